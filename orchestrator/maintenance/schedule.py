"""When each maintenance task runs, and which scheduler runs it.

Periods come from ``[maintenance]``; the work-queue optimisation runs daily at a local
time, as cron would. Before running a task a scheduler claims its period in the
store's ledger (``store.schedule``): of all supervisors (and cron) sharing a store,
exactly one runs each period. The health check is adaptive, as SwarmSH's automation
loop: below HEALTH_WARNING_THRESHOLD it runs twice as often, and back above 80 it
returns to its own period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import SwarmError
from orchestrator.maintenance.tasks import TASKS, Maintenance, Outcome
from orchestrator.store.schedule import RUNNING, ScheduleLedger, TaskRun

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.config import SwarmConfig
    from orchestrator.maintenance.settings import MaintenanceSettings
    from orchestrator.store.base import Store
    from orchestrator.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)

RECOVER_ABOVE = 80  # health above this returns the check to its own period (SwarmSH)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    period_s: float | None = None  # every period_s seconds ...
    daily_at: tuple[int, int] | None = None  # ... or daily at this local time
    adaptive: bool = False

    def next_after(self, t: float, period_s: float | None = None) -> float:
        """When the run after one starting at ``t`` is due."""
        if self.daily_at is not None:
            hour, minute = self.daily_at
            local = dt.datetime.fromtimestamp(t).astimezone()
            due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if due.timestamp() <= t:
                due += dt.timedelta(days=1)
            return due.timestamp()
        return t + (period_s or self.period_s or 0.0)

    def first_due(self, now: float) -> float:
        """A swarm's first run: periodic tasks at once, the daily one at its hour."""
        return self.next_after(now) if self.daily_at is not None else now

    def describe(self) -> str:
        if self.daily_at is not None:
            return f"daily at {self.daily_at[0]:02d}:{self.daily_at[1]:02d}"
        return f"every {_duration(self.period_s or 0)}" + (" (adaptive)" if self.adaptive else "")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def task_specs(settings: MaintenanceSettings) -> dict[str, TaskSpec]:
    specs = {
        "sweep": TaskSpec("sweep", settings.sweep_s),
        "health": TaskSpec("health", settings.health_s, adaptive=True),
        "telemetry": TaskSpec("telemetry", settings.telemetry_s),
        "performance": TaskSpec("performance", settings.performance_s),
        "optimize": TaskSpec("optimize", daily_at=settings.optimize_at),
    }
    return {name: specs[name] for name in TASKS}


def owner_id() -> str:
    return f"{os.environ.get('SWARM_HOST_ID') or socket.gethostname()}:{os.getpid()}"


class Scheduler:
    """Runs the tasks that are due and that this scheduler claimed, one at a time."""

    def __init__(
        self,
        maintenance: Maintenance,
        ledger: ScheduleLedger,
        specs: dict[str, TaskSpec],
        *,
        health_warning: int,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self.maintenance = maintenance
        self.ledger = ledger
        self.specs = specs
        self.health_warning = health_warning
        self.clock = clock
        self.owner = owner or owner_id()
        self._due: dict[str, float] = {}  # cached next_due: the ledger is read when one passes

    def start(self) -> None:
        """Create the ledger's rows this swarm has not seen yet."""
        now = self.clock()
        for spec in self.specs.values():
            self.ledger.ensure(spec.name, spec.first_due(now), spec.period_s)
        self._due = {}

    def tick(self, slack_s: float = 0.0) -> list[Outcome]:
        """Run every task due at now (+ ``slack_s``: cron starts a few seconds either
        side of the minute) whose period this scheduler wins."""
        now = self.clock()
        if len(self._due) == len(self.specs) and min(self._due.values()) > now + slack_s:
            return []
        rows = self.ledger.runs()
        outcomes = []
        for name, spec in self.specs.items():
            row = rows.get(name)
            if row is None:
                self.ledger.ensure(name, spec.first_due(now), spec.period_s)
                row = TaskRun(name, spec.first_due(now), spec.period_s)
            self._due[name] = row.next_due
            if row.next_due > now + slack_s:
                continue
            outcome = self._claim_and_run(spec, row.period_s, now, force=False, trigger="schedule")
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def run_now(self, name: str, trigger: str = "manual") -> Outcome:
        """Run a task now whether due or not; its next period counts from now."""
        spec = self.specs[name]
        row = self.ledger.runs().get(name)
        outcome = self._claim_and_run(
            spec, row.period_s if row else None, self.clock(), force=True, trigger=trigger
        )
        assert outcome is not None  # a forced claim always succeeds
        return outcome

    def _claim_and_run(
        self, spec: TaskSpec, period_s: float | None, now: float, *, force: bool, trigger: str
    ) -> Outcome | None:
        period = period_s or spec.period_s
        next_due = spec.next_after(now, period)
        if not self.ledger.claim(spec.name, now, next_due, self.owner, period, force=force):
            self._due.pop(spec.name, None)  # another scheduler won: read its next_due
            return None
        outcome = self.maintenance.run(spec.name, trigger)
        new_period = self._adapt(spec, period, outcome)
        if new_period != period:
            next_due = spec.next_after(now, new_period)
        self.ledger.finish(
            spec.name,
            "ok" if outcome.ok else "error",
            outcome.summary,
            self.clock(),
            next_due=next_due,
            period_s=new_period,
        )
        self._due[spec.name] = next_due
        return outcome

    def _adapt(self, spec: TaskSpec, period: float | None, outcome: Outcome) -> float | None:
        score = outcome.data.get("score")
        if not spec.adaptive or spec.period_s is None or not isinstance(score, int):
            return period
        if score < self.health_warning:
            if period != spec.period_s / 2:
                logger.warning(
                    "health %d below %d: health checks every %s",
                    score,
                    self.health_warning,
                    _duration(spec.period_s / 2),
                )
            return spec.period_s / 2
        if score > RECOVER_ABOVE:
            return spec.period_s
        return period  # between the two: keep the current pace

    def status(self) -> list[dict[str, object]]:
        """Each task: its schedule, last run, outcome and next run."""
        rows = self.ledger.runs()
        return [status_row(spec, rows.get(name)) for name, spec in self.specs.items()]


def status_row(spec: TaskSpec, row: TaskRun | None) -> dict[str, object]:
    return {
        "task": spec.name,
        "schedule": spec.describe(),
        "period_s": row.period_s if row and row.period_s else spec.period_s,
        "last_started": row.last_started if row else None,
        "last_finished": row.last_finished if row else None,
        "outcome": row.outcome if row else None,
        "summary": row.summary if row else None,
        "owner": row.owner if row else None,
        "runs": row.runs if row else 0,
        "next_due": row.next_due if row else None,
        "running": bool(row and row.outcome == RUNNING),
    }


class Background:
    """The supervisor's hook: on its tick, looks for due tasks at most every
    ``check_s`` and runs them in a thread, so a long archive never delays reaping."""

    def __init__(self, scheduler: Scheduler, check_s: float = 1.0) -> None:
        self.scheduler = scheduler
        self.check_s = check_s
        self._last = 0.0
        self._thread: threading.Thread | None = None
        self._started = False

    def poll(self) -> None:
        now = time.monotonic()
        if (self._thread is not None and self._thread.is_alive()) or now - self._last < (
            self.check_s
        ):
            return
        self._last = now
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if not self._started:
                self.scheduler.start()
                self._started = True
            self.scheduler.tick()
        except SwarmError as exc:
            logger.error("maintenance: %s (retrying)", exc.message)
        except Exception:
            logger.exception("maintenance failed (retrying)")

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        self.scheduler.ledger.close()


def scheduler_for(
    config: SwarmConfig | None,
    store: Store,
    store_target: str,
    agents_dir: Path,
    telemetry: TelemetrySettings,
    clock: Callable[[], float] = time.time,
) -> Scheduler:
    """The scheduler of the swarm of ``config`` (None: defaults) on its store."""
    from orchestrator.maintenance.settings import resolve_maintenance
    from orchestrator.store.schedule import open_ledger

    settings = resolve_maintenance(config)
    schema = config.store.schema_name if config is not None else "swarmsh"
    return Scheduler(
        Maintenance(store, settings, telemetry, agents_dir, clock),
        open_ledger(store_target, schema),
        task_specs(settings),
        health_warning=telemetry.health_warning,
        clock=clock,
    )


def supervisor_hook(
    config: SwarmConfig, store: Store, agents_dir: Path, telemetry: TelemetrySettings
) -> Background | None:
    """What the supervisor polls on its tick; None when [maintenance] is disabled."""
    from orchestrator.maintenance.settings import resolve_maintenance

    if not resolve_maintenance(config).enabled:
        return None
    scheduler = scheduler_for(config, store, config.store_target(), agents_dir, telemetry)
    return Background(scheduler)
