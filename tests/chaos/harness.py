"""A real swarm under faults, and the check of what survived.

Every item runs a command that appends "<agent_id> <pid>" to its own file under
``runs/``, so each execution is on record even when its agent is killed right after.
``check()`` then compares three witnesses: those execution files, the store (its items
and its operation log), and the result files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.records import WorkItem
from orchestrator.store import journal
from orchestrator.store.base import Store
from orchestrator.wiring import open_store

from ..conftest import SWARM

RECORD = 'echo "$SWARM_AGENT_ID $$" >> "$RUNS/$SWARM_WORK_ITEM_ID"'
RESULTS: list[dict[str, Any]] = []  # figures of this session's scenarios, for the report
# Supervisors started by this session's runs, ended and waited for after each test
# (an assertion mid-scenario must not leave one running, nor an unwaited Popen).
_STARTED: list[subprocess.Popen[bytes]] = []


def stop_started() -> None:
    """kill -9 the process group of every supervisor a run started and still running."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class Report:
    scenario: str
    items: int
    faults: int
    completed: int = 0
    lost: int = 0
    doubled: int = 0  # executed twice while the first executor was alive and not faulted
    re_executed_after_fault: int = 0
    wrong_holder: int = 0
    result_files_missing: int = 0
    log_mismatches: int = 0
    duration_s: float = 0.0
    recover_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.doubled
            or self.wrong_holder
            or self.result_files_missing
            or self.log_mismatches
        )


def record(report: Report) -> Report:
    RESULTS.append(asdict(report) | {"ok": report.ok})
    return report


class ChaosRun:
    def __init__(
        self,
        root: Path,
        *,
        items: int,
        agents: int,
        lease_s: float = 5.0,
        sleep_s: float = 0.0,
        max_attempts: int = 50,
        dsn: str | None = None,
        schema: str | None = None,
        stop_timeout_s: float = 2.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = extra_env or {}
        self.root = root
        self.runs = root / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        store_toml = f'backend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n' if dsn else ""
        (root / "swarm.toml").write_text(
            f"[store]\n{store_toml}lease_s = {lease_s}\nmax_attempts = {max_attempts}\n\n"
            f'[[agents]]\nname = "w"\ncount = {agents}\nmax_restarts = 100000\nenv = ["RUNS"]\n'
            f"backoff_initial_s = 0.02\nbackoff_max_s = 0.5\nstop_timeout_s = {stop_timeout_s}\n"
        )
        self.target = dsn if dsn else str(root / "agent_coordination")
        self.schema = schema
        command = RECORD + (f"; sleep {sleep_s}" if sleep_s else "")
        store = self.store()
        self.ids: list[str] = []
        batch = [
            WorkItem(
                work_item_id="",
                work_type="chaos",
                description=f"item {n}",
                payload={"argv": ["sh", "-c", command]},
                # An item's attempts are fixed when it is added, by whoever adds it:
                # this store handle, not the swarm.toml written above.
                max_attempts=max_attempts,
            )
            for n in range(items)
        ]
        for start in range(0, items, 1000):
            self.ids += store.add_many(batch[start : start + 1000])
        store.close()
        self.proc: subprocess.Popen[bytes] | None = None
        self.faulted_agents: set[str] = set()
        self.started = time.monotonic()

    def store(self) -> Store:
        from orchestrator.config import StoreConfig

        settings = StoreConfig.model_validate({"schema": self.schema} if self.schema else {})
        return open_store(self.target, settings)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
        return env | {"RUNS": str(self.runs)} | self.extra_env

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.root / "supervisor.log", "ab")
        self.proc = subprocess.Popen(
            [SWARM, "up", "--until-drained"],
            cwd=self.root,
            env=self.env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        _STARTED.append(self.proc)
        log.close()
        return self.proc

    def wait(self, timeout: float = 600) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill_supervisor_and_agents(self) -> None:
        """kill -9 the whole process group: supervisor, fork server, agents."""
        assert self.proc is not None
        for agent in self.agents():
            if agent.get("agent_id"):
                self.faulted_agents.add(agent["agent_id"])
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def agents(self) -> list[dict[str, Any]]:
        try:
            state = json.loads((self.root / "real_agents" / "supervisor.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return [a for a in state.get("agents", []) if a.get("state") == "running"]

    def completed(self) -> int:
        store = self.store()
        try:
            return sum(1 for i in store.list_work() if i.status == "completed")
        finally:
            store.close()

    def executions(self) -> dict[str, list[tuple[str, int]]]:
        found: dict[str, list[tuple[str, int]]] = {}
        for path in self.runs.iterdir():
            lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
            found[path.name] = [(agent, int(pid)) for agent, pid in lines]
        return found

    def completions_in_log(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        if self.schema:
            import psycopg

            with psycopg.connect(self.target) as conn:
                rows = conn.execute(
                    f"SELECT work_item_id FROM {self.schema}.events WHERE op = 'complete'"
                ).fetchall()
            counts.update(r[0] for r in rows)
            return counts
        store_dir = Path(self.target)
        seen: set[int] = set()
        files = [*sorted((store_dir / "journal").glob("gen-*.jsonl")), store_dir / "journal.jsonl"]
        for path in files:
            if not path.exists() or path.stat().st_ino in seen:
                continue
            seen.add(path.stat().st_ino)
            for line in path.read_bytes().splitlines(keepends=True):
                event = journal.decode(line)
                if event and event.get("op") == "complete":
                    counts.update(i["work_item_id"] for i in event.get("items", []))
        return counts

    def check(self, scenario: str, faults: int, **extra: Any) -> Report:
        store = self.store()
        try:
            items = {i.work_item_id: i for i in store.list_work()}
        finally:
            store.close()
        report = Report(
            scenario,
            len(self.ids),
            faults,
            duration_s=round(time.monotonic() - self.started, 2),
            **extra,
        )
        runs = self.executions()
        logged = self.completions_in_log()
        results: dict[str, list[dict[str, Any]]] = {}
        for path in (self.root / "real_work_results").glob("*.json"):
            data = json.loads(path.read_text())
            results.setdefault(data["work_item_id"], []).append(data)
        for work_id in self.ids:
            item = items.get(work_id)
            if item is None or item.status != "completed":
                report.lost += 1
                continue
            report.completed += 1
            executors = [agent for agent, _ in runs.get(work_id, [])]
            if item.agent_id not in executors:
                report.wrong_holder += 1
            if len(executors) > 1:
                others = [a for a in executors if a != item.agent_id]
                if all(a in self.faulted_agents for a in others):
                    report.re_executed_after_fault += 1
                else:
                    report.doubled += 1
            if not any(r["agent_id"] == item.agent_id for r in results.get(work_id, [])):
                report.result_files_missing += 1
            if logged[work_id] != 1:
                report.log_mismatches += 1
        return record(report)
