"""``telemetry_performance_report.json``: throughput, latency quantiles and success
rate over the last period, overall and per agent group, from the span file (store
operation latencies) and the store (what finished, how long it was held)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import runstate
from orchestrator.records import WorkStatus
from orchestrator.telemetry.observe import slot_names
from orchestrator.telemetry.stats import Sketch, collect

if TYPE_CHECKING:
    from orchestrator.records import WorkItem
    from orchestrator.store.base import Store


def group_of(agent_id: str | None, names: dict[str, str]) -> str:
    """The agent group an item's holder belonged to: its slot name without the index
    (``searcher-2`` -> ``searcher``); agents no supervisor started are their own."""
    if agent_id is None:
        return "unknown"
    name = names.get(agent_id)
    return name.rsplit("-", 1)[0] if name and "-" in name else (name or agent_id)


def _work_figures(items: list[WorkItem], hours: float) -> dict[str, Any]:
    sketch = Sketch()
    completed = 0
    for item in items:
        completed += item.status == WorkStatus.COMPLETED
        if item.claimed_at is not None and item.completed_at is not None:
            sketch.add(max(0.0, item.completed_at - item.claimed_at) * 1000)
    return {
        "finished": len(items),
        "completed": completed,
        "throughput_per_hour": round(len(items) / hours, 3) if hours else 0.0,
        "success_rate": round(completed / len(items), 4) if items else None,
        "work_ms": {
            "p50": round(sketch.quantile(0.5), 1),
            "p95": round(sketch.quantile(0.95), 1),
            "p99": round(sketch.quantile(0.99), 1),
        },
    }


def performance_report(
    store: Store, spans_file: str, agents_dir: Path, window_s: float, now: float
) -> dict[str, Any]:
    since = now - window_s
    finished = [
        item
        for item in store.list_work(include_terminal=True)
        if item.terminal and (item.completed_at or item.updated_at) >= since
    ]
    names = slot_names(runstate.read(agents_dir))
    groups: dict[str, list[WorkItem]] = defaultdict(list)
    for item in finished:
        groups[group_of(item.agent_id, names)].append(item)
    hours = window_s / 3600
    stats = collect(spans_file, window_s, now=now).to_dict()
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "window_s": window_s,
        "work": _work_figures(finished, hours),
        "groups": {name: _work_figures(items, hours) for name, items in sorted(groups.items())},
        "spans": {
            "count": stats["spans"],
            "errors": stats["errors"],
            "success_rate": stats["success_rate"],
            "ops_per_s": stats["ops_per_s"],
        },
        "store_operations": stats["store_operations"],
        "operations": stats["operations"],
    }
