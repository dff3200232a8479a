"""The maintenance tasks, each one span ``swarmsh.maintenance.<task>`` with its outcome.

They reuse what the commands already do: the health score (``telemetry.health``), the
span archive (``telemetry.archive``), statistics (``telemetry.stats``) and the store's
own ``sweep`` and ``compact``. A task that fails records the error in its span and its
outcome; it never raises into the supervisor's loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import runstate
from orchestrator.errors import InvalidArgument, SwarmError
from orchestrator.maintenance.performance import performance_report
from orchestrator.records import ACTIVE_STATUSES, WorkStatus
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from orchestrator.maintenance.settings import MaintenanceSettings
    from orchestrator.store.base import Store
    from orchestrator.telemetry.health import HealthReport
    from orchestrator.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)

# In the order `swarm maintenance run all` runs them.
TASKS = ("sweep", "health", "telemetry", "performance", "optimize")
SPAN_PREFIX = "swarmsh.maintenance."


@dataclass
class Outcome:
    task: str
    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "outcome": "ok" if self.ok else "error",
            "summary": self.summary,
            "duration_ms": round(self.duration_ms, 1),
            "data": self.data,
        }


class Maintenance:
    """Runs one task at a time against a store, the span file and the run folder."""

    def __init__(
        self,
        store: Store,
        settings: MaintenanceSettings,
        telemetry: TelemetrySettings,
        agents_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.telemetry = telemetry
        self.agents_dir = agents_dir
        self.clock = clock
        self._tasks: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
            "sweep": self._sweep,
            "health": self._health,
            "telemetry": self._telemetry,
            "performance": self._performance,
            "optimize": self._optimize,
        }

    def run(self, task: str, trigger: str = "manual") -> Outcome:
        """Run ``task`` now, as a span; ``trigger`` says who asked (schedule, cron,
        manual)."""
        work = self._tasks.get(task)
        if work is None:
            raise InvalidArgument(
                f"maintenance task {task!r}: use one of {', '.join(TASKS)} or all"
            )
        started = time.perf_counter()
        with tracing.tracer().start_as_current_span(
            SPAN_PREFIX + task,
            attributes={"swarm.maintenance.task": task, "swarm.maintenance.trigger": trigger},
        ) as span:
            try:
                summary, data = work()
                outcome = Outcome(task, True, summary, data)
            except (SwarmError, OSError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                logger.error("maintenance %s failed: %s", task, message)
                outcome = Outcome(task, False, message)
                span.set_status(tracing.error_status(message[:500]))
                span.set_attribute("error.type", type(exc).__name__)
            span.set_attribute("swarm.maintenance.outcome", "ok" if outcome.ok else "error")
            span.set_attribute("swarm.maintenance.summary", outcome.summary[:500])
            if "score" in outcome.data:
                span.set_attribute("swarm.health.score", outcome.data["score"])
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    # -- the tasks ------------------------------------------------------------------------

    def _sweep(self) -> tuple[str, dict[str, Any]]:
        expired = self.store.sweep()
        return f"{len(expired)} expired lease(s) returned", {"expired": len(expired)}

    def _health(self) -> tuple[str, dict[str, Any]]:
        report = compute_health(self.store, self.telemetry, self.agents_dir, self.clock())
        path = Path(self.telemetry.health_report)
        path.parent.mkdir(parents=True, exist_ok=True)
        runstate.write_json(path, report.to_dict())
        summary = f"score {report.score} ({report.status}), report {path.name}"
        return summary, {"score": report.score, "status": report.status, "report": str(path)}

    def _telemetry(self) -> tuple[str, dict[str, Any]]:
        from orchestrator.telemetry.archive import archive

        result = archive(self.telemetry, now=self.clock())
        parts = [f"rotated ({result.reason})" if result.rotated else "nothing to rotate"]
        if result.compressed:
            parts.append(f"{len(result.compressed)} compressed")
        if result.deleted:
            parts.append(f"{len(result.deleted)} old archive(s) deleted")
        data = {
            "rotated": result.rotated,
            "reason": result.reason,
            "lines": result.lines,
            "bytes": result.bytes,
            "compressed": result.compressed,
            "deleted": result.deleted,
        }
        return ", ".join(parts), data

    def _performance(self) -> tuple[str, dict[str, Any]]:
        report = performance_report(
            self.store,
            self.telemetry.spans_file,
            self.agents_dir,
            self.settings.performance_s,
            self.clock(),
        )
        path = Path(self.settings.performance_report)
        path.parent.mkdir(parents=True, exist_ok=True)
        runstate.write_json(path, report)
        work = report["work"]
        rate = work["success_rate"]
        summary = (
            f"{work['finished']} item(s) finished, {work['throughput_per_hour']}/h, success "
            + ("n/a" if rate is None else f"{rate:.0%}")
            + f", report {path.name}"
        )
        return summary, {"report": str(path), "finished": work["finished"]}

    def _optimize(self) -> tuple[str, dict[str, Any]]:
        return optimize_queue(self.store, self.settings, self.clock())


def compute_health(
    store: Store | None, telemetry: TelemetrySettings, agents_dir: Path, now: float
) -> HealthReport:
    """The health score of ``swarm health``, over TELEMETRY_WINDOW."""
    from orchestrator.telemetry.observe import health_of, observe
    from orchestrator.telemetry.reader import newest_span_ns
    from orchestrator.telemetry.settings import parse_window
    from orchestrator.telemetry.stats import collect

    spans = telemetry.spans_file
    return health_of(
        observe(store, agents_dir),
        collect(spans, parse_window(telemetry.window), now=now),
        telemetry,
        newest_span_ns=newest_span_ns(spans),
    )


def optimize_queue(
    store: Store, settings: MaintenanceSettings, now: float
) -> tuple[str, dict[str, Any]]:
    """SwarmSH's ``optimize``: return expired leases, archive finished items (the store's
    compaction), and warn when the live queue is above WORK_MAX_ACTIVE. Writes
    ``work_optimization_report.json``."""
    expired = store.sweep()
    archived = store.compact()
    items = store.list_work(include_terminal=True)
    active = [item for item in items if item.status in ACTIVE_STATUSES]
    cutoff = now - settings.work_archive_days * 86400
    old = [
        item.work_item_id
        for item in items
        if item.terminal and (item.completed_at or item.updated_at) < cutoff
    ]
    warnings = []
    if len(active) > settings.work_max_active:
        warnings.append(
            f"{len(active)} active items exceed WORK_MAX_ACTIVE={settings.work_max_active}:"
            " add agents, or cancel work nobody needs"
        )
    if old:
        warnings.append(
            f"{len(old)} finished item(s) older than WORK_ARCHIVE_DAYS="
            f"{settings.work_archive_days:g} are still in the store"
        )
    data: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "expired_leases": len(expired),
        "archived": archived,
        "active": len(active),
        "pending": sum(1 for i in active if i.status == WorkStatus.PENDING),
        "held": sum(1 for i in active if i.held),
        "finished_kept": sum(1 for i in items if i.terminal),
        "older_than_archive_days": old[:100],
        "work_max_active": settings.work_max_active,
        "work_archive_days": settings.work_archive_days,
        "warnings": warnings,
    }
    path = Path(settings.optimization_report)
    path.parent.mkdir(parents=True, exist_ok=True)
    runstate.write_json(path, data)
    for warning in warnings:
        logger.warning("optimize: %s", warning)
    summary = (
        f"{archived} finished item(s) archived, {len(expired)} lease(s) returned,"
        f" {len(active)} active (max {settings.work_max_active})"
    )
    if warnings:
        summary += "; " + "; ".join(warnings)
    return summary, data | {"report": str(path)}
