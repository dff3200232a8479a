"""What the observing commands (health, metrics, monitor, diagram) look at: the store,
the supervisor's state file and the span file, read without recording spans."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from orchestrator import runstate
from orchestrator.telemetry.reader import iter_spans, parse_lines
from orchestrator.telemetry.stats import SpanStats

if TYPE_CHECKING:
    from orchestrator.records import Agent, WorkItem
    from orchestrator.store.base import Store
    from orchestrator.telemetry.health import HealthReport
    from orchestrator.telemetry.settings import TelemetrySettings


@dataclass
class Observation:
    items: list[WorkItem]
    agents: list[Agent]
    supervisor: dict[str, Any] | None
    supervisor_alive: bool

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    @functools.cached_property
    def names(self) -> dict[str, str]:
        """The supervisor's slot names (``searcher-2``) of the agents it started, by
        agent id: shorter than the ids, and what ``swarm status`` and the logs say."""
        return slot_names(self.supervisor)

    def name_of(self, agent_id: str) -> str:
        return self.names.get(agent_id, agent_id)


def slot_names(state: dict[str, Any] | None) -> dict[str, str]:
    """Agent id -> slot name, from the rows of a supervisor state file (or snapshot)."""
    rows = state.get("agents") if state is not None else None
    if not isinstance(rows, list):
        return {}
    return {
        str(row["agent_id"]): str(row["name"])
        for row in rows
        if isinstance(row, dict) and row.get("agent_id") and row.get("name")
    }


def observe(store: Store | None, agents_dir: Path | None) -> Observation:
    """The store (None: never created, so empty) and the supervisor's state file."""
    state = runstate.read(agents_dir) if agents_dir is not None else None
    return Observation(
        items=store.list_work(include_terminal=True) if store is not None else [],
        agents=store.list_agents() if store is not None else [],
        supervisor=state,
        supervisor_alive=state is not None and runstate.is_alive(state),
    )


def dead_agents(observation: Observation) -> list[str]:
    """Agents whose process should be running and is not: slots a running supervisor
    gave up on (fatal), and agents a supervisor started (its state file lists them) on
    this host whose process is gone although they never deregistered.

    An agent registered with ``swarm register`` is a record of a person or a script, not
    a process swarmsh runs: the pid kept with it is the calling shell's, which is gone as
    soon as a script ends, so it says nothing about the agent. Such agents are judged by
    their claims instead: an item one of them holds past its lease is a stale claim."""
    dead: list[str] = []
    if observation.supervisor is not None and observation.supervisor_alive:
        for agent in observation.supervisor.get("agents", []):
            if agent.get("state") == "fatal":
                dead.append(str(agent.get("agent_id") or agent.get("name")))
    started = observation.names
    host = os.environ.get("SWARM_HOST_ID") or socket.gethostname()
    for registered in observation.agents:
        if (
            registered.agent_id in started
            and registered.agent_id not in dead
            and registered.host == host
            and registered.pid
            and not psutil.pid_exists(registered.pid)
        ):
            dead.append(registered.agent_id)
    return dead


def health_of(
    observation: Observation,
    stats: SpanStats,
    settings: TelemetrySettings,
    *,
    newest_span_ns: int | None,
    window: str | None = None,
) -> HealthReport:
    from orchestrator.telemetry.health import assess

    return assess(
        stats,
        observation.items,
        dead_agents=dead_agents(observation),
        registered_agents={agent.agent_id for agent in observation.agents},
        newest_span_ns=newest_span_ns,
        settings=settings,
        window=window,
    )


def window_health(
    observation: Observation, settings: TelemetrySettings, label: str, window_s: float | None
) -> tuple[SpanStats, HealthReport]:
    """The spans of a window and the health score of them with ``observation``: what
    ``swarm health``, ``swarm metrics`` and the HTTP API's ``/api/health`` report."""
    from orchestrator.telemetry.reader import newest_span_ns
    from orchestrator.telemetry.stats import collect

    stats = collect(settings.spans_file, window_s)
    report = health_of(
        observation,
        stats,
        settings,
        newest_span_ns=newest_span_ns(settings.spans_file),
        window=label,
    )
    return stats, report


class SpanTail:
    """Statistics of a span file kept current by reading only what was appended since
    the last poll; starts over when the file is rotated (archive) or truncated."""

    def __init__(
        self, spans_file: str, window_s: float | None = None, from_end: bool = False
    ) -> None:
        self.path = spans_file
        self.window_s = window_s
        self.stats = SpanStats(window_s=None, now_ns=time.time_ns())
        self._inode: int | None = None
        self._offset = 0
        self._since_ns = None if window_s is None else time.time_ns() - int(window_s * 1e9)
        self._lock = threading.Lock()
        if from_end:  # count only what is written from now on
            try:
                info = os.stat(spans_file)
                self._inode, self._offset = info.st_ino, info.st_size
            except FileNotFoundError:
                pass

    def poll(self) -> SpanStats:
        with self._lock:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                return self.stats
            if info.st_ino != self._inode or info.st_size < self._offset:
                self._inode, self._offset = info.st_ino, 0
            if info.st_size == self._offset:
                return self.stats
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read(info.st_size - self._offset)
            cut = data.rfind(b"\n") + 1  # a batch being written: take whole lines only
            self._offset += cut
            for span in parse_lines(data[:cut].splitlines(), self._since_ns, self.stats.read):
                self.stats.add(span)
            return self.stats


def recent_spans(spans_file: str, limit: int, window_s: float | None) -> list[dict[str, Any]]:
    """The last ``limit`` spans of the window (streamed; keeps ``limit`` in memory)."""
    from collections import deque

    since = None if window_s is None else time.time_ns() - int(window_s * 1e9)
    return list(deque(iter_spans(spans_file, since_ns=since), maxlen=limit))
