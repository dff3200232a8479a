"""A maintenance scheduler in a child process, on a clock the test moves (spawn-safe)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.maintenance.schedule import Scheduler, task_specs
from orchestrator.maintenance.settings import resolve_maintenance
from orchestrator.maintenance.tasks import Maintenance
from orchestrator.store.schedule import open_ledger
from orchestrator.telemetry.settings import resolve_settings
from orchestrator.wiring import open_store


def set_clock(path: Path, value: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(value))
    os.replace(tmp, path)


def scheduler_loop(target: str, schema: str, root: str, name: str) -> None:
    """Tick whenever the clock file changes; log what this process ran to ``name.runs``
    and the clock value it has ticked at to ``name.seen``, until ``stop`` exists."""
    folder = Path(root)
    os.chdir(folder)
    clock_file = folder / "clock"

    def clock() -> float:
        return float(clock_file.read_text())

    settings = resolve_maintenance(None)
    telemetry = resolve_settings(None)
    from orchestrator.store import StoreOptions, open_backend

    store = (
        open_backend(target, StoreOptions(schema=schema)) if "://" in target else open_store(target)
    )
    scheduler = Scheduler(
        Maintenance(store, settings, telemetry, folder / name, clock),
        open_ledger(target, schema),
        task_specs(settings),
        health_warning=telemetry.health_warning,
        clock=clock,
        owner=name,
    )
    scheduler.start()
    seen = None
    while not (folder / "stop").exists():
        now = clock()
        if now == seen:
            time.sleep(0.01)  # waiting for the test to move the clock
            continue
        for outcome in scheduler.tick():
            with open(folder / f"{name}.runs", "a") as log:
                log.write(f"{now} {outcome.task} {outcome.ok}\n")
        seen = now
        set_clock(folder / f"{name}.seen", now)
    store.close()
    scheduler.ledger.close()
