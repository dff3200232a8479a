"""What the supervisor tells the outside: its state file, one record per agent in
``real_agents/``, a span per agent start and exit, and the ``/metrics`` endpoint."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from orchestrator import runstate
from orchestrator.slots import Slot, SlotState
from orchestrator.store import base
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from orchestrator.config import StoreConfig, SwarmConfig
    from orchestrator.store.base import Store
    from orchestrator.telemetry.metrics import MetricsServer
    from orchestrator.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)


def agent_record(slot: Slot, host: str, now: float) -> dict[str, Any]:
    """``real_agents/<agent_id>.json``: the slot, its counts and a resource sample."""
    record: dict[str, Any] = {
        "agent_id": slot.agent_id,
        "group": slot.group.name,
        "slot": slot.index,
        "name": slot.name,
        "host": host,
        "pid": slot.pid,
        "state": slot.state.value,
        "backend": slot.group.backend,
        "started_at": slot.started_at,
        "restarts": slot.restarts,
        "exit_code": slot.exit_code,
        "items_done": slot.items_done,
        "items_failed": slot.items_failed,
        "sampled_at": now,
    }
    if slot.ps is not None and slot.process is not None:
        try:
            with slot.ps.oneshot():
                sample = {
                    "cpu_percent": slot.ps.cpu_percent(None),
                    "rss_bytes": slot.ps.memory_info().rss,
                    "threads": slot.ps.num_threads(),
                }
            # An agent that exited but is not reaped yet (a zombie) reads as no memory:
            # that is not a sample, and it would overwrite the last real one.
            if sample["rss_bytes"]:
                slot.sample = sample
        except psutil.Error:
            pass  # it exited between the check and the sample: the last sample stays
    # An exited agent keeps its last sample rather than nulls.
    record |= {key: slot.sample.get(key) for key in ("cpu_percent", "rss_bytes", "threads")}
    return record


def write_agent_record(agents_dir: Path, slot: Slot, host: str, now: float) -> None:
    if slot.agent_id is not None:
        path = agents_dir / f"{slot.agent_id}.json"
        runstate.write_json(path, agent_record(slot, host, now))


def groups_summary(slots: Iterable[Slot]) -> dict[str, dict[str, Any]]:
    """Per group: processes running, restarts, items done and failed, and its state
    (fatal once any slot is, running while any slot runs or waits to restart)."""
    groups: dict[str, dict[str, Any]] = {}
    for slot in slots:
        g = groups.setdefault(
            slot.group.name,
            {
                "backend": slot.group.backend,
                "count": slot.group.count,
                "running": 0,
                "restarts": 0,
                "state": "exited",
                "done": 0,
                "failed": 0,
            },
        )
        g["running"] += slot.state == SlotState.RUNNING
        if slot.active and g["state"] != "fatal":
            g["state"] = "running"
        elif slot.state == SlotState.STOPPED and g["state"] == "exited":
            g["state"] = "stopped"
        g["restarts"] += slot.restarts
        g["done"] += slot.items_done
        g["failed"] += slot.items_failed
        if slot.state == SlotState.FATAL:
            g["state"] = "fatal"
    return groups


def agent_rows(slots: Iterable[Slot]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "group": s.group.name,
            "backend": s.group.backend,
            "agent_id": s.agent_id,
            "pid": s.pid,
            "state": s.state.value,
            "restarts": s.restarts,
            "exit_code": s.exit_code,
            "started_at": s.started_at if s.state == SlotState.RUNNING else None,
            "current": s.current[0] if s.current else None,
            "current_description": s.current[1] if s.current else None,
            "cpu_percent": s.sample.get("cpu_percent"),
            "rss_bytes": s.sample.get("rss_bytes"),
            "done": s.items_done,
            "failed": s.items_failed,
        }
        for s in slots
    ]


def agent_event(name: str, slot: Slot) -> None:
    """A span for an agent's start or exit: the diagrams and the timeline use them."""
    attributes: dict[str, Any] = {
        "swarm.operation": name.removeprefix("swarm."),
        "swarm.agent.id": slot.agent_id or "",
        "swarm.agent.group": slot.group.name,
        "swarm.agent.slot": slot.name,
        "swarm.agent.state": str(slot.state),
        "swarm.agent.restarts": slot.restarts,
    }
    if slot.pid is not None:
        attributes["process.pid"] = slot.pid
    if slot.exit_code is not None:
        attributes["process.exit.code"] = slot.exit_code
    span = tracing.tracer().start_span(name, attributes=attributes)
    if slot.exit_code not in (None, 0):
        span.set_status(tracing.error_status(f"exit code {slot.exit_code}"))
    span.end()


def serve_metrics(
    port: int,
    store_target: str,
    store_config: StoreConfig,
    telemetry: TelemetrySettings,
    snapshot: Callable[[], dict[str, Any]],
    config: SwarmConfig | None = None,
) -> MetricsServer:
    """``/metrics`` on 127.0.0.1:``port``. Scrapes run in the server's thread, so they
    read through a store of their own. With ``config``: limits, budgets and the ledger too."""
    from orchestrator.limits_metrics import limit_metrics
    from orchestrator.telemetry import endpoint
    from orchestrator.wiring import open_store

    extra = None if config is None else (lambda store: limit_metrics(store, config))
    server = endpoint.serve(
        port, open_store(store_target, store_config), telemetry, snapshot, extra
    )
    logger.info("metrics on http://127.0.0.1:%d/metrics", server.port)
    return server


def work_counts(
    store: Store | None, enqueued: Iterable[str] | None = None
) -> tuple[Counter[str], Counter[str]]:
    """Every item counted by status, and (given the ids a run enqueued from swarm.toml)
    that run's items and their follow-ups, items made later that wait for them. Counted
    by the store where it can (the live view asks twice a second)."""
    if store is None:
        return Counter(), Counter()
    every = base.work_counts(store)
    if enqueued is None:
        return every, Counter()
    return every, base.run_counts(store, enqueued)
