"""Claiming several items per round trip (``claim_many``) on PostgreSQL, and the agents
that use it for short items: every guarantee of a single claim holds for each item of a
batch: exactly once among live holders, leases, one logged change per item,
``release_agent`` after a kill -9 returns all of them, a warm stop gives back those not
started."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.config import DEFAULT_CLAIM_BATCH, load_config
from orchestrator.errors import ConfigError
from orchestrator.records import ClaimFilter, WorkItem
from orchestrator.store.base import claim_many
from orchestrator.store.file import FileStore
from orchestrator.store.postgres import PostgresStore
from orchestrator.telemetry.traced_store import TracedStore
from orchestrator.wiring import open_store

from .conftest import SWARM, wait_for
from .pg_claim_workers import claim_batches, hold_a_batch


def _items(n: int, **extra: Any) -> list[WorkItem]:
    return [
        WorkItem(work_item_id="", work_type="t", description=f"item {i}", **extra) for i in range(n)
    ]


def _events(dsn: str, schema: str, op: str) -> Counter[tuple[str, str]]:
    """(work id, by agent) -> how many ``op`` records the operation log holds."""
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        rows = conn.execute(
            "SELECT work_item_id, coalesce(by_agent, '') FROM events WHERE op = %s", (op,)
        ).fetchall()
    return Counter((work_id, by) for work_id, by in rows)


def test_a_batch_is_the_queue_head_each_item_held_leased_and_logged_once(
    pg_dsn: str, pg_schema: str
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema, lease_s=30)
    low = store.add_many(_items(3, priority="low"))
    high = store.add_many(_items(2, priority="high"))
    other = store.add_work(WorkItem(work_item_id="", work_type="other", description="o"))
    batch = claim_many(store, "a1", ClaimFilter(work_types=frozenset({"t"})), count=3)
    assert [i.work_item_id for i in batch] == [*high, low[0]]  # priority, then age
    assert all(i.status == "claimed" and i.agent_id == "a1" for i in batch)
    assert all(i.lease_expires_at and i.lease_expires_at > i.claimed_at for i in batch)  # type: ignore[operator]
    claims = _events(pg_dsn, pg_schema, "claim")
    assert claims == Counter({(i.work_item_id, "a1"): 1 for i in batch})
    # Fewer pending than asked: what there is; none: an empty list.
    rest = claim_many(store, "a2", ClaimFilter(work_types=frozenset({"t"})), count=10)
    assert [i.work_item_id for i in rest] == list(low[1:])
    assert claim_many(store, "a2", ClaimFilter(work_types=frozenset({"t"})), count=10) == []
    # The heartbeat extends every lease of the batch; one not started goes back as is.
    assert store.heartbeat("a1") == 3
    back = store.release(batch[2].work_item_id, agent_id="a1")
    assert back.status == "pending" and back.attempts == 0
    released = store.release_agent("a1")
    assert sorted(i.work_item_id for i in released) == sorted(high)
    assert all(i.status == "pending" and i.attempts == 1 for i in released)
    assert store.get(other).status == "pending"
    store.close()


def test_other_stores_claim_one_at_a_time(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    with FileStore(tmp_path / "s") as file_store:
        file_store.add_many(_items(5))
        assert len(claim_many(file_store, "a1", count=5)) == 1
    traced = open_store(tmp_path / "s")  # the wrapper every agent uses passes it through
    assert len(claim_many(traced, "a1", count=5)) == 1
    traced.close()
    pg = TracedStore(PostgresStore(pg_dsn, schema=pg_schema), "postgres")
    pg.add_many(_items(5))
    assert len(claim_many(pg, "a1", count=5)) == 5
    pg.close()


def test_each_item_of_a_traced_batch_has_its_claim_span_in_its_own_trace(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    from orchestrator.telemetry import tracing
    from orchestrator.telemetry.settings import TelemetrySettings

    path = tmp_path / "spans.jsonl"
    tracing.configure("agent", TelemetrySettings(spans_file=str(path)), short_lived=True)
    try:
        store = TracedStore(PostgresStore(pg_dsn, schema=pg_schema), "postgres")
        ids = store.add_many(_items(3))
        batch = claim_many(store, "a1", count=5)
        store.close()
    finally:
        tracing.shutdown()
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    # Each item carries its trace from its enqueue (W3C traceparent: version-trace-span-flags).
    trace_of = {i.work_item_id: (i.trace_context or {})["traceparent"].split("-")[1] for i in batch}
    assert len(batch) == 3 and len(set(trace_of.values())) == 3
    claims = [s for s in spans if s["name"] == "swarm.claim"]
    assert sorted(s["attributes"]["swarm.work.id"] for s in claims) == sorted(ids)
    assert all(s["trace_id"] == trace_of[s["attributes"]["swarm.work.id"]] for s in claims)
    assert all(s["attributes"]["swarm.claim.batch"] == 3 for s in claims)


def test_processes_claiming_batches_never_share_an_item(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    ids = store.add_many(_items(600))
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    outs = [tmp_path / f"claimed{n}" for n in range(6)]
    procs = [
        ctx.Process(
            target=claim_batches,
            args=(pg_dsn, pg_schema, f"a{n}", 3 + n, str(outs[n]), go),
            daemon=True,  # a failing test does not wait for them at exit
        )
        for n in range(6)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    claimed = Counter(w for out in outs for w in out.read_text().split())
    assert set(claimed) == set(ids) and set(claimed.values()) == {1}, "shared or lost"
    assert sum(1 for out in outs if out.read_text().split()) > 1
    assert sum(_events(pg_dsn, pg_schema, "claim").values()) == 600
    assert {i.status for i in store.list_work()} == {"completed"}
    store.close()


def test_kill_9_of_a_batch_holder_then_release_agent_returns_the_whole_batch(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema, lease_s=300)
    store.add_many(_items(20))
    out = tmp_path / "held"
    ctx = multiprocessing.get_context("spawn")
    holder = ctx.Process(
        target=hold_a_batch, args=(pg_dsn, pg_schema, "victim", 8, str(out)), daemon=True
    )
    holder.start()
    held = wait_for(lambda: out.read_text().split(), timeout=60)
    assert len(held) == 8
    os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
    holder.join(10)
    assert {i.work_item_id for i in store.list_work() if i.agent_id == "victim"} == set(held)
    released = store.release_agent("victim")  # what the supervisor does on a death
    assert sorted(i.work_item_id for i in released) == sorted(held)
    assert all(i.status == "pending" and i.attempts == 1 and i.agent_id is None for i in released)
    assert _events(pg_dsn, pg_schema, "release_agent") == Counter({(w, "victim"): 1 for w in held})
    assert len(claim_many(store, "next", count=20)) == 20  # all of them claimable again
    store.close()


# -- agents: a real supervisor, python items that wait while a file exists ----------------


def _swarm(root: Path, dsn: str, schema: str, lease_s: int = 60) -> subprocess.Popen[str]:
    (root / "swarm.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n'
        f"lease_s = {lease_s}\n\n"
        '[[agents]]\nname = "w"\ncount = 2\nbackend = "python"\n'
        'function = "tests.pg_claim_workers:gated"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # tests.*
    return subprocess.Popen(
        [SWARM, "up", "--until-drained"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _batched(dsn: str, schema: str) -> bool:
    """Whether some agent has claimed several items in one call (one transaction: one
    time on each of its claim records)."""
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE op = 'claim'"
            " GROUP BY by_agent, ts HAVING count(*) > 1) AS batches"
        ).fetchone()
    return bool(row and row[0])


def _paused_with_items_ahead(store: PostgresStore, hold: Path) -> dict[str, list[str]]:
    """Hold both agents in an item at a moment when one has items claimed ahead; return
    agent -> ids it holds. An agent may be paused at the last item of its batch: then
    let them run on a little and pause again."""
    for _ in range(20):
        hold.touch()
        wait_for(lambda: sum(1 for i in store.list_work(False) if i.status == "in_progress") == 2)
        held: dict[str, list[str]] = {}
        for item in store.list_work(False):
            if item.held and item.agent_id:
                held.setdefault(item.agent_id, []).append(item.work_item_id)
        if any(len(ids) > 1 for ids in held.values()):
            return held
        hold.unlink()
        _run_on(store, sum(1 for i in store.list_work() if i.status == "completed") + 5)
    raise AssertionError("never caught an agent with items claimed ahead")


def _run_on(store: PostgresStore, completed: int) -> None:
    wait_for(lambda: sum(1 for i in store.list_work() if i.status == "completed") >= completed)


@pytest.fixture
def short_items(pg_dsn: str, pg_schema: str, tmp_path: Path) -> tuple[PostgresStore, list[str]]:
    store = PostgresStore(pg_dsn, schema=pg_schema, lease_s=60)
    payload = {"log": str(tmp_path / "ran.log"), "hold": str(tmp_path / "hold")}
    return store, list(store.add_many(_items(1000, payload=payload)))


def _pending_sigterm(pid: int) -> bool:
    """Whether a SIGTERM sent to ``pid`` is still on its way (not yet taken by it)."""
    bit = 1 << (signal.SIGTERM - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & bit:
            return True
    return False


def _ran(tmp_path: Path) -> Counter[str]:
    log = tmp_path / "ran.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


@pytest.mark.slow
def test_agents_with_short_items_claim_ahead_and_a_warm_stop_gives_back_the_rest(
    pg_dsn: str, pg_schema: str, tmp_path: Path, short_items: tuple[PostgresStore, list[str]]
) -> None:
    store, _ids = short_items
    proc = _swarm(tmp_path, pg_dsn, pg_schema)
    try:
        wait_for(lambda: _batched(pg_dsn, pg_schema), timeout=60)
        held = _paused_with_items_ahead(store, tmp_path / "hold")
        running = {i.work_item_id for i in store.list_work(False) if i.status == "in_progress"}
        ahead = {w for ws in held.values() for w in ws} - running
        assert ahead and not ahead & set(_ran(tmp_path))
        # A warm stop while both agents are still in their item: signal them, wait until
        # the signal has reached them (so each sees it before its item returns), then
        # stop the supervisor and let the items finish.
        pids = [a.pid for a in store.list_agents() if a.pid is not None]
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not any(_pending_sigterm(pid) for pid in pids))
        os.kill(proc.pid, signal.SIGTERM)
        (tmp_path / "hold").unlink()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    items = {i.work_item_id: i for i in store.list_work()}
    assert not [i for i in items.values() if i.held], "a stopped agent still holds items"
    assert all(items[w].status == "completed" for w in running)
    given_back = [items[w] for w in ahead]
    assert all(
        i.status == "pending" and i.attempts == 0 and i.agent_id is None for i in given_back
    ), [(i.status, i.attempts, i.agent_id, i.error) for i in given_back]
    released = _events(pg_dsn, pg_schema, "release")
    assert all(released[(w, a)] == 1 for a, ws in held.items() for w in ws if w in ahead)
    assert not ahead & set(_ran(tmp_path)), "an item given back had run"
    ran = _ran(tmp_path)
    assert set(ran.values()) == {1}
    assert {w for w, i in items.items() if i.status == "completed"} == set(ran)
    store.close()


@pytest.mark.slow
def test_kill_9_of_an_agent_holding_items_ahead_returns_them_all_at_once(
    pg_dsn: str, pg_schema: str, tmp_path: Path, short_items: tuple[PostgresStore, list[str]]
) -> None:
    store, ids = short_items
    proc = _swarm(tmp_path, pg_dsn, pg_schema)
    try:
        wait_for(lambda: _batched(pg_dsn, pg_schema), timeout=60)
        held = _paused_with_items_ahead(store, tmp_path / "hold")
        victim = next(a for a, ws in held.items() if len(ws) > 1)
        running = {i.work_item_id for i in store.list_work(False) if i.status == "in_progress"}
        ahead = set(held[victim]) - running
        pid = store.get_agent(victim).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # The supervisor returns all of them at once (the lease is 60 s), an attempt each.
        wait_for(lambda: not [i for i in store.list_work(False) if i.agent_id == victim])
        back = {w: store.get(w) for w in held[victim]}
        assert all(i.attempts == 1 and i.agent_id != victim for i in back.values())
        log = _events(pg_dsn, pg_schema, "release_agent")
        assert all(log[(w, victim)] == 1 for w in held[victim])
        (tmp_path / "hold").unlink()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    items = store.list_work()
    assert {i.status for i in items} == {"completed"} and len(items) == len(ids)
    ran = _ran(tmp_path)
    assert set(ran) == set(ids)
    # Only the item the victim was running may have run twice; those ahead ran once.
    assert sum(ran.values()) - len(ids) <= 1
    assert ahead and all(ran[w] == 1 for w in ahead)
    store.close()


@pytest.mark.slow
def test_cancelling_the_running_item_stops_it_though_items_are_claimed_ahead(
    pg_dsn: str, pg_schema: str, tmp_path: Path, short_items: tuple[PostgresStore, list[str]]
) -> None:
    store, _ids = short_items
    proc = _swarm(tmp_path, pg_dsn, pg_schema, lease_s=3)  # a heartbeat every second
    try:
        wait_for(lambda: _batched(pg_dsn, pg_schema), timeout=60)
        held = _paused_with_items_ahead(store, tmp_path / "hold")
        agent = next(a for a, ws in held.items() if len(ws) > 1)
        running = next(
            i.work_item_id
            for i in store.list_work(False)
            if i.status == "in_progress" and i.agent_id == agent
        )
        store.cancel(running, "operator")
        # The agent still holds the items ahead, yet its heartbeat sees the running one
        # gone and moves on to the next (which waits on the hold file in turn).
        wait_for(
            lambda: any(
                i.status == "in_progress" and i.agent_id == agent and i.work_item_id != running
                for i in store.list_work(False)
            ),
            timeout=30,
        )
        assert store.get(running).status == "cancelled"
        os.kill(proc.pid, signal.SIGTERM)
        (tmp_path / "hold").unlink()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err


# -- claim_batch: how many items an agent of a group may claim at once ------------------


def _most_held(dsn: str, schema: str) -> dict[str, int]:
    """Work type -> the most items one agent held at once while working it, replaying
    the operation log (every change of every item, in the order they were made)."""
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        rows = conn.execute(
            "SELECT e.work_item_id, e.agent_id, e.status, w.work_type FROM events e"
            " JOIN work_items w USING (work_item_id) ORDER BY e.id"
        ).fetchall()
    holder: dict[str, str | None] = {}
    held: Counter[str] = Counter()
    most: dict[str, int] = {}
    for work_id, agent, status, work_type in rows:
        before = holder.get(work_id)
        if before is not None:
            held[before] -= 1
        now = agent if status in ("claimed", "in_progress", "blocked") else None
        holder[work_id] = now
        if now is not None:
            held[now] += 1
            most[work_type] = max(most.get(work_type, 0), held[now])
    return most


@pytest.mark.slow
def test_claim_batch_1_holds_one_item_at_a_time_where_the_default_claims_ahead(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    # Two groups side by side on the same short items, each claiming its own work type:
    # the default group shows the items are short enough to claim ahead in this run.
    store = PostgresStore(pg_dsn, schema=pg_schema, lease_s=60)
    payload = {"log": str(tmp_path / "ran.log"), "hold": str(tmp_path / "hold")}
    for work_type in ("one", "ahead"):
        store.add_many(
            [
                WorkItem(
                    work_item_id="",
                    work_type=work_type,
                    description=f"{work_type} {i}",
                    payload=payload,
                )
                for i in range(400)
            ]
        )
    groups = "".join(
        f'[[agents]]\nname = "{name}"\ncount = 1\nbackend = "python"\n'
        f'function = "tests.pg_claim_workers:gated"\nwork_types = ["{name}"]\n{extra}\n'
        for name, extra in (("one", "claim_batch = 1\n"), ("ahead", ""))
    )
    (tmp_path / "swarm.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n\n{groups}'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # tests.*
    run = subprocess.run(
        [SWARM, "up", "--until-drained"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert {i.status for i in store.list_work()} == {"completed"}
    most = _most_held(pg_dsn, pg_schema)
    assert most["one"] == 1, most
    assert most["ahead"] > 1, most
    store.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "be greater than or equal to 1 (got 0)"),
        ("65", "be less than or equal to 64 (got 65)"),
        ('"8"', "be a valid integer (got '8')"),
        ("2.5", "be a valid integer (got 2.5)"),
        ("true", "be a valid integer (got True)"),
    ],
)
def test_a_bad_claim_batch_is_one_clear_line(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "swarm.toml"
    path.write_text(f'[[agents]]\nname = "w"\nclaim_batch = {value}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:3: [[agents]] #1 claim_batch: Input should {message}"
    run = subprocess.run([SWARM, "status"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and str(caught.value) in run.stderr


def test_claim_batch_defaults_to_the_one_default(tmp_path: Path) -> None:
    path = tmp_path / "swarm.toml"
    path.write_text('[[agents]]\nname = "a"\n\n[[agents]]\nname = "b"\nclaim_batch = 64\n')
    assert [g.claim_batch for g in load_config(path).agents] == [DEFAULT_CLAIM_BATCH, 64]
