"""Exactly-once claims and crash safety, proven with real processes and kill -9."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore

from .conftest import SWARM, FileClock
from .workers import claim_and_complete, enqueue_keys

ROOT = Path(__file__).resolve().parent.parent


def _items(n: int) -> list[WorkItem]:
    priorities = ["low", "medium", "high", "critical"]
    return [
        WorkItem(
            work_item_id=f"w{i:06d}", work_type="t", description="d", priority=priorities[i % 4]
        )
        for i in range(n)
    ]


@pytest.mark.slow
def test_16_processes_complete_5000_items_exactly_once(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    store = FileStore(store_path)
    for start in range(0, 5000, 500):
        store.add_many(_items(5000)[start : start + 500])
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = []
    for n in range(16):
        out = tmp_path / f"done{n}"
        proc = ctx.Process(
            target=claim_and_complete, args=(str(store_path), f"agent{n}", str(out), go)
        )
        proc.start()
        procs.append((f"agent{n}", out, proc))
    go.set()
    for _, _, proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    done: Counter[str] = Counter()
    by_agent: dict[str, str] = {}
    for agent, out, _ in procs:
        for work_id in out.read_text().split():
            done[work_id] += 1
            by_agent[work_id] = agent
    assert len(done) == 5000 and set(done.values()) == {1}, "an item was lost or doubled"
    assert sum(1 for _, out, _ in procs if out.read_text()) > 1, "only one process worked"
    final = FileStore(store_path).list_work()
    assert len(final) == 5000
    assert all(i.status == "completed" and i.agent_id == by_agent[i.work_item_id] for i in final)


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_12_processes_enqueueing_the_same_keys_make_one_item_per_key(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    keys = [f"key-{n:02d}" for n in range(60)]
    if backend == "postgres":
        from orchestrator.store.postgres import PostgresStore

        target, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        store: Any = PostgresStore(target, schema=schema)  # migrated before the race
    else:
        target, schema = str(tmp_path / "store"), None
        store = FileStore(target)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    outs = [tmp_path / f"enqueued{n}" for n in range(12)]
    procs = [
        ctx.Process(target=enqueue_keys, args=(target, schema, keys, n, str(outs[n]), go))
        for n in range(12)
    ]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * 12
    stored = store.list_work()
    store.close()
    assert sorted(i.key for i in stored) == keys, "a key was enqueued twice or never"
    by_key = {i.key: i.work_item_id for i in stored}
    adders: Counter[str] = Counter()
    for out in outs:
        for line in out.read_text().splitlines():
            attempt, key, work_id, new = line.split()
            assert work_id == by_key[key], "a process was told another item's id"
            if new == "1":
                assert attempt == "0"
                adders[key] += 1
    assert adders == Counter(keys), "not exactly one process added each key"


def test_10_cli_claims_at_once_all_saved(tmp_path: Path, cli_env: dict[str, str]) -> None:
    procs = [
        subprocess.Popen(
            [SWARM, "claim", "feature", f"task {n}", "high", "--json"],
            env=cli_env | {"AGENT_ID": f"agent_{n}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(10)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, outputs
    claimed = [orjson.loads(out) for out, _ in outputs]
    assert len({c["work_item_id"] for c in claimed}) == 10
    stored = FileStore(cli_env["SWARM_STORE"]).list_work()
    assert sorted(i.description for i in stored) == sorted(f"task {n}" for n in range(10))
    assert all(i.status == "claimed" for i in stored)


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers", *args], cwd=ROOT, stdout=subprocess.PIPE
    )


def test_kill_9_while_holding_claims_returns_items_after_lease(tmp_path: Path) -> None:
    clock = FileClock()  # this handle's time; the victim's claims use the real one
    store = FileStore(tmp_path, lease_s=30.0, clock=clock)
    ids = store.add_many(_items(5))
    victim = _spawn("claim_and_hang", str(tmp_path), "victim", "3", "30")
    assert victim.stdout is not None and victim.stdout.readline() == b"claimed\n"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    victim.stdout.close()
    held = [i for i in store.list_work() if i.agent_id == "victim"]
    assert len(held) == 3 and all(i.status == "claimed" for i in held)
    clock.advance(20)
    free = [store.claim("survivor"), store.claim("survivor")]
    assert store.claim("survivor") is None  # the victim's leases still run (10 s)
    clock.advance(11)
    returned = [store.claim("survivor") for _ in range(3)]
    assert all(free) and all(returned)
    assert {i.work_item_id for i in returned if i} == {i.work_item_id for i in held}
    assert sorted(i.work_item_id for i in free + returned if i) == sorted(ids)
    assert [i.attempts for i in free + returned if i] == [0, 0, 1, 1, 1]


@pytest.mark.slow
def test_kill_9_mid_write_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    acknowledged: list[str] = []
    rng = random.Random(7)
    for _ in range(8):
        writer = _spawn("add_forever", str(tmp_path))
        assert writer.stdout is not None
        first = writer.stdout.readline()  # it is writing: kill it at a random moment
        time.sleep(rng.uniform(0.1, 0.5))
        os.kill(writer.pid, signal.SIGKILL)
        out, _ = writer.communicate()
        acknowledged += (first + out).decode().split()
    assert len(acknowledged) > 100
    stored = {i.work_item_id for i in FileStore(tmp_path).list_work()}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged items lost"
