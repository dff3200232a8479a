"""Fault scenarios against a real swarm: the invariants are checked by the harness
(nothing lost, nothing done twice by live agents, the store's log and the result
files agree) and the figures go to docs/RELIABILITY.md via `make chaos`."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.errors import StorageFull
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore

from ..conftest import SWARM
from .conftest import scale
from .harness import ChaosRun, Report, record


def _until(predicate: Any, timeout: float = 120, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(every)


def test_kill_9_of_a_random_agent_every_200ms(tmp_path: Path) -> None:
    run = ChaosRun(tmp_path, items=scale(600, 5000), agents=6, sleep_s=0.005)
    proc = run.start()
    rng = random.Random(5)
    kills = 0
    while proc.poll() is None:
        time.sleep(0.2)
        agents = run.agents()
        if not agents:
            continue
        victim = rng.choice(agents)
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except ProcessLookupError:
            continue
        run.faulted_agents.add(victim["agent_id"])
        kills += 1
    assert proc.returncode == 0, (tmp_path / "supervisor.log").read_text()[-2000:]
    report = run.check("kill -9 of a random agent every 200 ms", kills)
    assert kills >= 3 and report.ok, report


def test_kill_9_of_the_supervisor_twice_then_up_again(tmp_path: Path) -> None:
    items = scale(600, 3000)
    run = ChaosRun(tmp_path, items=items, agents=4, lease_s=2, sleep_s=0.01)
    held: set[str] = set()
    for round_ in (1, 2):
        run.start()
        _until(lambda r=round_: run.completed() >= items * r // 4)
        run.kill_supervisor_and_agents()
        store = run.store()
        held = {i.work_item_id for i in store.list_work() if i.held}  # by dead agents now
        store.close()
    restarted = time.monotonic()
    run.start()

    def held_done() -> bool:
        store = run.store()
        try:
            return all(store.get(w).status == "completed" for w in held)
        finally:
            store.close()

    _until(held_done)
    recover = round(time.monotonic() - restarted, 2)
    assert run.wait() == 0
    report = run.check(
        "kill -9 of the supervisor and all its agents, twice; swarm up again", 2, recover_s=recover
    )
    report.notes.append(f"{len(held)} items held at the last kill came back at lease end (2 s)")
    assert report.ok, report


def test_sigstop_past_the_lease_then_sigcont(tmp_path: Path) -> None:
    run = ChaosRun(tmp_path, items=10, agents=2, lease_s=2, sleep_s=1.0, stop_timeout_s=5)
    run.start()
    victim: dict[str, Any] = {}

    def someone_holds() -> bool:
        store = run.store()
        try:
            held = [i for i in store.list_work() if i.held]
        finally:
            store.close()
        ran = run.executions()
        for agent in run.agents():
            for item in held:
                # Its command has started: the agent only waits for it now.
                started = any(a == agent["agent_id"] for a, _ in ran.get(item.work_item_id, []))
                if item.agent_id == agent["agent_id"] and started:
                    victim.update(agent, item=item.work_item_id)
                    return True
        return False

    _until(someone_holds)
    os.kill(victim["pid"], signal.SIGSTOP)
    run.faulted_agents.add(victim["agent_id"])
    stopped = time.monotonic()

    def reclaimed() -> bool:
        store = run.store()
        try:
            item = store.get(victim["item"])
        finally:
            store.close()
        return item.agent_id != victim["agent_id"] and item.attempts >= 1

    _until(reclaimed, timeout=30)
    recover = round(time.monotonic() - stopped, 2)

    def done_by_another() -> bool:
        store = run.store()
        try:
            item = store.get(victim["item"])
        finally:
            store.close()
        return item.status == "completed" and item.agent_id != victim["agent_id"]

    _until(done_by_another, timeout=60)  # while the first is still stopped
    os.kill(victim["pid"], signal.SIGCONT)
    assert run.wait() == 0
    report = run.check("SIGSTOP of an agent past its lease, then SIGCONT", 1, recover_s=recover)
    log = (tmp_path / "supervisor.log").read_text()
    # Woken, the agent either learns at its next heartbeat that it holds nothing and
    # stops the work, or finishes first and has its late completion refused.
    stopped_early = f"{victim['item']} is no longer held; stopping it" in log
    refused = f"result for {victim['item']} discarded" in log
    report.notes.append(
        "the woken agent stopped the work at its next heartbeat: "
        f"{'yes' if stopped_early else 'no'}; its late complete was refused as a conflict"
        f" and its result file removed: {'yes' if refused else 'no'}"
    )
    assert stopped_early or refused, log[-2000:]
    assert report.ok and report.re_executed_after_fault >= 1, report


def _small_run_store(tmp_path: Path) -> Path:
    run = ChaosRun(tmp_path / "run", items=150, agents=3)
    run.start()
    assert run.wait() == 0
    return Path(run.target)


def _state(path: Path) -> dict[str, tuple[str, str | None]]:
    store = FileStore(path)
    try:
        return {i.work_item_id: (i.status, i.agent_id) for i in store.list_work()}
    finally:
        store.close()


def test_journal_cut_at_every_offset_and_bit_flips(tmp_path: Path) -> None:
    source = _small_run_store(tmp_path)
    whole = (source / FileStore.JOURNAL).read_bytes()
    lines = whole.splitlines(keepends=True)
    last_start = len(whole) - len(lines[-1])

    def opened(data: bytes, name: str) -> tuple[dict[str, tuple[str, str | None]], int]:
        copy = tmp_path / name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".lock", "journal.jsonl"))
        (copy / FileStore.JOURNAL).write_bytes(data)
        store = FileStore(copy)
        items = {i.work_item_id: (i.status, i.agent_id) for i in store.list_work()}
        dropped = store.dropped_records
        store.close()
        shutil.rmtree(copy)
        return items, dropped

    expected, _ = opened(whole[:last_start], "intact")
    cuts = 0
    for cut in range(last_start + 1, len(whole)):
        items, dropped = opened(whole[:cut], f"cut{cut}")
        assert items == expected and dropped == 1, cut
        cuts += 1
    rng = random.Random(3)
    flips = 0
    for _ in range(scale(20, 200)):
        index = rng.randrange(1, len(lines))
        line = bytearray(lines[index])
        bit = rng.randrange(8 * (len(line) - 1))  # never the newline
        line[bit // 8] ^= 1 << (bit % 8)
        if b"\n" in line[:-1]:
            continue  # a flip that made a newline splits the record: a different case
        without, _ = opened(b"".join(lines[:index] + lines[index + 1 :]), f"without{index}")
        items, dropped = opened(
            b"".join([*lines[:index], bytes(line), *lines[index + 1 :]]), f"flip{index}"
        )
        assert dropped == 1 and items == without, index
        flips += 1
    report = record(
        Report(
            "journal cut at every byte of its last record; bit flips",
            len(expected),
            cuts + flips,
            completed=len(expected),
        )
    )
    report.notes.append(
        f"{cuts} cuts and {flips} single-bit flips: each time the store opened,"
        " dropped exactly the damaged record and kept every other"
    )


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def test_disk_full_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = tmp_path / "small"
    mounted = _mount_tmpfs(small, "256k")
    acknowledged: list[str] = []
    try:
        store = FileStore(small / "store", compact_bytes=1 << 30)
        if not mounted:  # no permission to mount: inject ENOSPC at the write call
            real_write = os.write
            budget = [200_000]

            def write(fd: int, data: bytes) -> int:
                budget[0] -= len(data)
                if budget[0] < 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(fd, data)

            monkeypatch.setattr("orchestrator.store.file.os.write", write)
        failures = 0
        for n in range(5000):
            try:
                acknowledged.append(
                    store.add_work(
                        WorkItem(
                            work_item_id="", work_type="t", description="x" * 500, payload={"n": n}
                        )
                    )
                )
            except StorageFull:
                failures += 1
                if failures == 3:
                    break
        assert failures == 3, "the disk never filled up"
        monkeypatch.undo()
        big = '{"blob": "' + "x" * 100_000 + '"}'  # more than the space left
        cli = subprocess.run(
            [SWARM, "--store", str(small / "store"), "add", "t", "more", "--payload", big],
            capture_output=True,
            text=True,
            cwd=tmp_path,  # its span goes here (undo() dropped TELEMETRY_SPANS_FILE too)
        )
        assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and "no space" in cli.stderr
        reopened = FileStore(small / "store")
        assert {i.work_item_id for i in reopened.list_work()} == set(acknowledged)
        assert reopened.dropped_records == 0  # no torn tail was left behind
        reopened.close()
        store.close()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(small)], check=False)
    report = record(
        Report("disk full while writing", len(acknowledged), 4, completed=len(acknowledged))
    )
    report.notes.append(
        ("a 256 KiB tmpfs" if mounted else "ENOSPC injected at os.write")
        + ": each failed write was refused with one clear error and cut from the"
        " journal; every acknowledged item survived"
    )


@pytest.mark.usefixtures("pg_dsn")
def test_postgres_connections_terminated_mid_run(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    items = scale(600, 3000)
    run = ChaosRun(
        tmp_path, items=items, agents=4, lease_s=3, sleep_s=0.005, dsn=pg_dsn, schema=pg_schema
    )
    run.start()
    terminated = 0
    for fraction in (4, 2):
        _until(lambda f=fraction: run.completed() >= items // f)
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            terminated += len(
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (f"swarmsh:{pg_schema}",),
                ).fetchall()
            )
    assert run.wait() == 0, (tmp_path / "supervisor.log").read_text()[-2000:]
    report = run.check(
        "PostgreSQL: pg_terminate_backend of every swarm connection, twice", terminated
    )
    assert terminated >= 4 and report.ok, report
