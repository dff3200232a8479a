"""Scheduled maintenance: every task at its period on an injected clock, the adaptive
health check, once per period across three schedulers (processes) and three real
supervisors on one PostgreSQL store, and the commands."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator.maintenance.schedule import Scheduler, task_specs
from orchestrator.maintenance.settings import resolve_maintenance
from orchestrator.maintenance.tasks import Maintenance
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore
from orchestrator.store.schedule import open_ledger
from orchestrator.telemetry.settings import resolve_settings

from .conftest import SWARM, wait_for
from .maintenance_workers import scheduler_loop, set_clock

# A Wednesday noon, local time (the daily optimisation runs at 03:00 local, as cron).
NOON = dt.datetime(2026, 1, 7, 12, 0).astimezone().timestamp()
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _scheduler(root: Path, store: Any, clock: Clock) -> Scheduler:
    settings = resolve_maintenance(None)
    telemetry = resolve_settings(None)
    return Scheduler(
        Maintenance(store, settings, telemetry, root / "real_agents", clock),
        open_ledger(str(root / "store")),
        task_specs(settings),
        health_warning=telemetry.health_warning,
        clock=clock,
    )


def test_every_task_runs_at_its_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore(tmp_path / "store")
    clock = Clock(NOON)
    scheduler = _scheduler(tmp_path, store, clock)
    scheduler.start()
    runs: dict[str, list[float]] = {}
    while clock.now <= NOON + 24 * HOUR:
        for outcome in scheduler.tick():
            assert outcome.ok, outcome
            runs.setdefault(outcome.task, []).append((clock.now - NOON) / HOUR)
        clock.now += 300
    assert runs["health"] == [float(h) for h in range(0, 25, 2)]
    assert runs["telemetry"] == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    assert runs["performance"] == [0.0, 6.0, 12.0, 18.0, 24.0]
    assert runs["optimize"] == [15.0]  # 03:00 the next morning
    assert len(runs["sweep"]) == 24 * 12 + 1
    # What the tasks wrote, where SwarmSH users look for it.
    health = json.loads((tmp_path / "system_health_report.json").read_text())
    assert 0 <= health["health_score"] <= 100
    performance = json.loads((tmp_path / "telemetry_performance_report.json").read_text())
    assert {"work", "groups", "store_operations"} <= performance.keys()
    assert json.loads((tmp_path / "work_optimization_report.json").read_text())["active"] == 0
    store.close()


def test_health_below_the_warning_runs_twice_as_often_until_above_80(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileStore(tmp_path / "store")
    # One failed item and no spans: 100 - 30 (all finished items failed) - 5 (no span) = 65.
    store.add_work(WorkItem("w1", "t", "d"))
    store.claim("a")
    store.fail("w1", "broken")
    clock = Clock(NOON)
    scheduler = _scheduler(tmp_path, store, clock)
    scheduler.specs = {"health": scheduler.specs["health"]}
    scheduler.start()

    def health_at(hours: float) -> int | None:
        clock.now = NOON + hours * HOUR
        outcomes = scheduler.tick()
        return outcomes[0].data["score"] if outcomes else None

    assert health_at(0) == 65
    assert health_at(0.99) is None
    assert health_at(1) == 65  # every hour while below HEALTH_WARNING_THRESHOLD (70)
    for n in range(9):  # nine of ten finished items succeed: 100 - 3 - 5 = 92
        store.add_work(WorkItem(f"ok{n}", "t", "d"))
        store.claim("a")
        store.complete(f"ok{n}", "success")
    assert health_at(2) == 92
    assert health_at(3) is None  # above 80: back to every 2 hours
    assert health_at(4) == 92
    rows = scheduler.ledger.runs()
    assert rows["health"].period_s == 2 * HOUR and rows["health"].runs == 4
    store.close()


def _pg_or_file(backend: str, request: pytest.FixtureRequest, root: Path) -> tuple[str, str]:
    if backend == "postgres":
        return request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return str(root / "store"), "swarmsh"


def test_three_schedulers_run_each_period_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target, schema = _pg_or_file(backend, request, tmp_path)
    set_clock(tmp_path / "clock", NOON)
    ctx = multiprocessing.get_context("spawn")
    names = ["s1", "s2", "s3"]
    procs = [
        ctx.Process(target=scheduler_loop, args=(target, schema, str(tmp_path), name))
        for name in names
    ]
    for proc in procs:
        proc.start()
    try:
        now = NOON
        while now <= NOON + 24 * HOUR:
            set_clock(tmp_path / "clock", now)
            wait_for(lambda at=now: _all_seen(tmp_path, names, at), timeout=60)
            now += HOUR / 2
    finally:
        (tmp_path / "stop").touch()
        for proc in procs:
            proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    lines = [
        line.split()
        for name in names
        if (tmp_path / f"{name}.runs").exists()
        for line in (tmp_path / f"{name}.runs").read_text().splitlines()
    ]
    assert all(ok == "True" for _, _, ok in lines)
    per_period = Counter((when, task) for when, task, _ in lines)
    assert max(per_period.values()) == 1  # no period ran twice
    by_task = Counter(task for _, task, _ in lines)
    assert by_task == {"sweep": 49, "health": 13, "telemetry": 7, "performance": 5, "optimize": 1}
    ledger = open_ledger(target, schema)
    assert {name: row.runs for name, row in ledger.runs().items()} == by_task
    ledger.close()


def _all_seen(root: Path, names: list[str], at: float) -> bool:
    """Every scheduler has ticked at clock value ``at``."""
    return all(float((root / f"{name}.seen").read_text() or 0) == at for name in names)


def _swarm(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [SWARM, *args], cwd=root, capture_output=True, text=True, env=env, timeout=120
    )


def test_three_supervisors_on_postgres_run_each_task_once(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    """Three real `swarm up` on one schema: at start each periodic task is due, and
    exactly one supervisor runs it (one span in all three span files)."""
    supervisors = []
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    for n in range(3):
        root = tmp_path / f"host{n}"
        root.mkdir()
        (root / "swarm.toml").write_text(
            f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n\n'
            '[[agents]]\nname = "w"\ncount = 1\nfunction = "json:dumps"\nbackend = "python"\n'
        )
        env_n = env | {"TELEMETRY_SPANS_FILE": str(root / "spans.jsonl")}
        with open(root / "up.log", "w") as log:
            supervisors.append(
                subprocess.Popen([SWARM, "up"], cwd=root, env=env_n, stdout=log, stderr=log)
            )
    try:
        ledger = open_ledger(pg_dsn, pg_schema)

        def finished() -> bool:
            rows = ledger.runs()
            periodic = ("sweep", "health", "telemetry", "performance")
            return all(rows[t].outcome == "ok" for t in periodic if t in rows) and all(
                t in rows for t in periodic
            )

        wait_for(finished, timeout=90)
        # Every supervisor has looked at the ledger since (each polls it every second
        # and rewrites its state file every 2 s): wait for two state writes each.
        marks = [_state_time(tmp_path / f"host{n}") for n in range(3)]
        wait_for(
            lambda: all(_state_time(tmp_path / f"host{n}") > marks[n] + 2.5 for n in range(3)),
            timeout=60,
        )
        rows = ledger.runs()
        ledger.close()
    finally:
        for proc in supervisors:
            proc.terminate()
        for proc in supervisors:
            proc.wait(30)
    assert {t: rows[t].runs for t in ("sweep", "health", "telemetry", "performance")} == {
        "sweep": 1,
        "health": 1,
        "telemetry": 1,
        "performance": 1,
    }
    assert rows["optimize"].runs == 0  # not before 03:00
    spans = Counter(
        span["name"]
        for n in range(3)
        for line in (tmp_path / f"host{n}" / "spans.jsonl").read_text().splitlines()
        if (span := json.loads(line))["name"].startswith("swarmsh.maintenance.")
    )
    assert spans == {
        "swarmsh.maintenance.sweep": 1,
        "swarmsh.maintenance.health": 1,
        "swarmsh.maintenance.telemetry": 1,
        "swarmsh.maintenance.performance": 1,
    }
    owners = {rows[t].owner for t in ("sweep", "health")}
    assert all(owner and ":" in owner for owner in owners)


def _state_time(root: Path) -> float:
    try:
        return float(
            json.loads((root / "real_agents" / "supervisor.json").read_text())["updated_at"]
        )
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0.0
