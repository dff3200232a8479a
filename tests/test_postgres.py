"""What only the PostgreSQL store has: many processes on one database, lost
connections, migrations racing, NOTIFY, several hosts sharing one queue."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agents.results import reconcile
from orchestrator.records import Agent, WorkItem
from orchestrator.store.base import claim_many
from orchestrator.store.pg_schema import migrations
from orchestrator.store.pg_sql import SWEEP_LOCK, SWEEP_TRY_LOCK, SWEEP_UNLOCK
from orchestrator.store.postgres import PostgresStore

from .conftest import SWARM, PgClock, wait_for
from .workers import pg_drain, pg_migrate


def _items(n: int, **extra: Any) -> list[WorkItem]:
    return [
        WorkItem(work_item_id="", work_type="t", description=f"item {i}", **extra) for i in range(n)
    ]


def _drain_with(
    dsn: str, schema: str, tmp_path: Path, procs: int, lease_s: float, during: Any = None
) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    go, ready = ctx.Event(), ctx.Semaphore(0)
    outs = [tmp_path / f"done{n}" for n in range(procs)]
    workers = [
        ctx.Process(
            target=pg_drain, args=(dsn, schema, f"agent{n}", str(outs[n]), go, lease_s, ready)
        )
        for n in range(procs)
    ]
    for w in workers:
        w.start()
    for _ in workers:  # all started up, so they start draining together
        assert ready.acquire(timeout=120), "a worker did not start"
    go.set()
    if during is not None:
        during()
    for w in workers:
        w.join(240)
        assert w.exitcode == 0
    done: Counter[str] = Counter()
    for out in outs:
        done.update(out.read_text().split())
    return done


@pytest.mark.slow
def test_32_processes_complete_10000_items_exactly_once(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    ids = set(store.add_many(_items(10_000)))
    done = _drain_with(pg_dsn, pg_schema, tmp_path, 32, 60.0)
    assert set(done) == ids and set(done.values()) == {1}
    assert {i.status for i in store.list_work()} == {"completed"}
    store.close()


@pytest.mark.slow
def test_connections_killed_mid_run_lose_and_double_nothing(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    ids = set(store.add_many(_items(3000)))
    store.close()  # from here on, the connections named after the schema are the workers'
    workers = [f"agent{n}" for n in range(6)]
    killed: list[int] = []

    def terminate_twice() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:

            def completed_by() -> Counter[str]:
                rows = admin.execute(
                    f"SELECT agent_id, count(*) FROM {pg_schema}.work_items"
                    " WHERE status = 'completed' GROUP BY agent_id"
                ).fetchall()
                return Counter(dict(rows))

            def all_worked_since(before: Counter[str]) -> bool:
                now = completed_by()
                more = now.total() >= before.total() + len(ids) // 10
                return more and all(now[w] > before[w] for w in workers)

            def gone(pids: list[int]) -> bool:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchone()
                return row is not None and row[0] == 0

            before: Counter[str] = Counter()
            for _ in range(2):
                # Each worker completed an item since the last cut, so each is connected
                # (again): its pool keeps the connection it completed the item on.
                wait_for(lambda b=before: all_worked_since(b), timeout=120)
                rows = admin.execute(
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (f"swarmsh:{pg_schema}",),
                ).fetchall()
                cut = [pid for pid, ok in rows if ok]
                killed.append(len(cut))
                # Ended, so that whatever completes from now on went over a new connection.
                wait_for(lambda c=cut: gone(c), timeout=60)
                before = completed_by()

    done = _drain_with(pg_dsn, pg_schema, tmp_path, 6, 2.0, during=terminate_twice)
    assert len(killed) == 2 and min(killed) >= 6, killed  # every worker's connection, twice
    assert set(done) == ids, "an item was lost"
    assert set(done.values()) == {1}, "an item was completed twice"
    store = PostgresStore(pg_dsn, schema=pg_schema)
    assert {i.status for i in store.list_work()} == {"completed"}
    store.close()


def test_supervisors_starting_together_do_not_race_the_migration(
    pg_dsn: str, pg_schema: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=pg_migrate, args=(pg_dsn, pg_schema, go)) for _ in range(6)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 6
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(f"SELECT version, name FROM {pg_schema}.schema_version").fetchall()
    assert rows[:5] == [
        (1, "0001_initial.sql"),
        (2, "0002_claim_functions.sql"),
        (3, "0003_events_brin.sql"),
        (4, "0004_work_keys.sql"),
        (5, "0005_pipelines.sql"),
    ]
    assert rows == [(number, name) for number, name, _sql in migrations()]


def _schema_by_hand(
    conn: psycopg.Connection[Any], schema: str, applied: list[tuple[int, str, str]]
) -> None:
    """Make ``schema`` as a store of an earlier version left it: ``applied`` only,
    each recorded in ``schema_version`` (the search path stays on it)."""
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"SET search_path = {schema}")
    conn.execute(
        "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, sql in applied:
        conn.execute(sql.encode())
        conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, name))


def test_a_schema_from_before_keys_migrates_with_its_items(pg_dsn: str, pg_schema: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _schema_by_hand(conn, pg_schema, migrations()[:3])
        conn.execute(
            "INSERT INTO work_items (work_item_id, work_type, description, priority,"
            " priority_rank, status, max_attempts, created_at, updated_at)"
            " VALUES ('old_1', 't', 'from version 3', 'medium', 2, 'pending', 3, 1, 1)"
        )
    store = PostgresStore(pg_dsn, schema=pg_schema)
    assert [(i.work_item_id, i.key) for i in store.list_work()] == [("old_1", None)]
    keyed = store.add_work(WorkItem("", "t", "new", key="k"))
    assert store.add_many([WorkItem("", "t", "again", key="k")]).present == [keyed]
    claimed = store.claim("a1")
    assert claimed is not None and claimed.work_item_id == "old_1" and claimed.key is None
    store.close()


def test_an_enqueue_whose_commit_reply_was_lost_is_answered_as_first_done(
    pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    before = store.add_work(WorkItem("", "t", "before", key="k0"))
    real = store._pool.connection
    lost = [True]

    @contextmanager
    def reply_lost_once(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as conn:
            yield conn
        if lost:  # the transaction committed; the client never heard so
            lost.pop()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store._pool, "connection", reply_lost_once)
    got = store.add_many(
        [
            WorkItem("", "t", "a", key="k1"),
            WorkItem("", "t", "a again", key="k1"),
            WorkItem("", "t", "b"),
            WorkItem("", "t", "c", key="k0"),
        ]
    )
    assert not lost, "the reply was never lost"
    assert got.new == (True, False, True, False)
    assert (got[1], got[3]) == (got[0], before)
    assert sorted(i.work_item_id for i in store.list_work()) == sorted([before, got[0], got[2]])
    with psycopg.connect(pg_dsn) as conn:
        adds = conn.execute(f"SELECT count(*) FROM {pg_schema}.events WHERE op = 'add'").fetchone()
    assert adds == (3,)
    store.close()


def test_operations_are_logged_as_events(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    store.register(Agent(agent_id="a1"))
    work_id = store.add_work(_items(1)[0])
    store.claim("a1")
    store.complete(work_id, agent_id="a1")
    with psycopg.connect(pg_dsn) as conn:
        ops = [r[0] for r in conn.execute(f"SELECT op FROM {pg_schema}.events ORDER BY id")]
    assert ops == ["register", "add", "claim", "complete"]
    store.close()


def test_notify_wakes_an_idle_agent_at_once(pg_dsn: str, pg_schema: str) -> None:
    idle, writer = PostgresStore(pg_dsn, schema=pg_schema), PostgresStore(pg_dsn, schema=pg_schema)
    woke: list[float] = []
    stop = threading.Event()
    idle.wait_for_work(0.01, stop)  # subscribe

    def wait() -> None:
        started = time.monotonic()
        idle.wait_for_work(20, stop)
        woke.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    # No pause for the waiter to block first: it listens since the call above, so the
    # notification waits on its connection if it comes before the waiter does.
    writer.add_work(_items(1)[0])
    waiter.join(30)
    assert woke and woke[0] < 5, woke  # woken by NOTIFY, not by the 20 s timeout
    idle.close()
    writer.close()


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWARM_STORE"}
    run = subprocess.run(
        [SWARM, "--store", "postgresql://postgres:hunter2@127.0.0.1:1/test", "list-work"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("swarm: error: cannot connect to PostgreSQL at ")
    assert run.stderr.count("\n") == 1 and "hunter2" not in run.stderr


def test_cli_against_postgres_and_db_migrate(pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}

    def swarm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SWARM, *args],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    migrate = swarm("db", "migrate", "--json")
    assert migrate.returncode == 0, migrate.stderr
    assert json.loads(migrate.stdout)["version"] == migrations()[-1][0]
    swarm("register", "100", "active", "x", AGENT_ID="a1", SWARM_HOST_ID="host-a")
    swarm("register", "100", "active", "y", AGENT_ID="b1", SWARM_HOST_ID="host-b")
    claimed = json.loads(swarm("claim", "feature", "x", "high", "--json", AGENT_ID="a1").stdout)
    assert claimed["status"] == "claimed"
    assert swarm("complete", claimed["work_item_id"], AGENT_ID="b1").returncode == 3
    assert swarm("complete", claimed["work_item_id"], "success", "5", AGENT_ID="a1").returncode == 0
    status = swarm("agent-status")
    assert status.stdout.index("host-a") < status.stdout.index("host-b")
    hosts = {a["host"] for a in json.loads(swarm("agent-status", "--json").stdout)}
    assert hosts == {"host-a", "host-b"}
    file_store = subprocess.run(
        [SWARM, "--store", str(tmp_path / "s"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert file_store.returncode == 2 and "PostgreSQL" in file_store.stderr


@pytest.mark.slow
def test_three_hosts_share_one_queue_and_survive_losing_one(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    store = PostgresStore(pg_dsn, schema=pg_schema)
    cmd = f'echo "$SWARM_WORK_ITEM_ID $SWARM_AGENT_ID" >> {log}; sleep 0.02'
    ids = set(store.add_many(_items(1000, payload={"argv": ["sh", "-c", cmd]})))
    hosts = {}
    for name in ("host-a", "host-b", "host-c"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "swarm.toml").write_text(
            f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n'
            'lease_s = 3\n\n[[agents]]\nname = "w"\ncount = 2\n'
        )
        env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
        hosts[name] = subprocess.Popen(
            [SWARM, "up", "--until-drained"],
            cwd=run_dir,
            env=env | {"SWARM_HOST_ID": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
    wait_for(
        lambda: sum(1 for i in store.list_work() if i.status == "completed") >= 250, timeout=120
    )
    held_by_b = {a.agent_id for a in store.list_agents() if a.host == "host-b"}
    assert held_by_b, "host-b never registered"
    os.killpg(hosts["host-b"].pid, signal.SIGKILL)  # the whole host: supervisor and agents
    for name in ("host-a", "host-c"):
        _, err = hosts[name].communicate(timeout=180)
        assert hosts[name].returncode == 0, err
    hosts["host-b"].communicate()
    # host-b comes back: its supervisor first settles the results its killed agents left
    # pending (an item completed in the store a moment before the kill has its file there).
    reconcile(str(tmp_path / "host-b" / "real_work_results"), store)
    items = store.list_work()
    assert {i.work_item_id for i in items} == ids and {i.status for i in items} == {"completed"}
    # One result file per item from the agent the store says completed it; a killed
    # host may also have left a file for an attempt that never counted.
    final_holder = {i.work_item_id: i.agent_id for i in items}
    results: Counter[str] = Counter()
    stale: list[str] = []
    by_host: Counter[str] = Counter()
    for name in hosts:
        for path in (tmp_path / name / "real_work_results").glob("*.json"):
            record = json.loads(path.read_text())
            if record["agent_id"] == final_holder[record["work_item_id"]]:
                results[record["work_item_id"]] += 1
                by_host[record["host"]] += 1
            else:
                stale.append(record["work_item_id"])
    assert set(results) == ids and set(results.values()) == {1}, "lost or doubled"
    assert by_host["host-a"] and by_host["host-c"] and by_host["host-b"]
    reclaimed = {i.work_item_id for i in items if i.attempts > 0}
    assert reclaimed, "host-b held nothing when killed"
    assert all(final_holder[w] not in held_by_b for w in reclaimed)
    assert set(stale) <= reclaimed
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(runs) == ids and sum(runs.values()) - len(ids) <= 2  # only host-b's in-flight
    store.close()


def test_the_lease_sweep_is_one_per_schema_not_one_per_database(
    pg_dsn: str, pg_schema: str
) -> None:
    """Swarms in two schemas of one database: while the first's sweeper holds its lock
    (the statement the store itself uses), the second still expires its own leases, and
    its own sweeper's lock does keep a second sweeper of the same schema out."""
    other = f"{pg_schema}_b"
    with (
        PostgresStore(pg_dsn, schema=pg_schema),  # creates the first schema
        PostgresStore(pg_dsn, schema=other) as second,
    ):
        try:
            held = second.claim_new(
                "agent_b", WorkItem(work_item_id="", work_type="t", description="x")
            )
            PgClock(pg_dsn, other).advance(3600)
            for schema, expired in ((other, []), (pg_schema, [held.work_item_id])):
                with psycopg.connect(
                    pg_dsn, autocommit=True, options=f"-c search_path={schema}"
                ) as sweeper:
                    row = sweeper.execute(SWEEP_TRY_LOCK, (SWEEP_LOCK,)).fetchone()
                    assert row is not None and row[0]
                    assert [item.work_item_id for item in second.sweep()] == expired
                    sweeper.execute(SWEEP_UNLOCK, (SWEEP_LOCK,))
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {other} CASCADE")


def test_a_migration_numbered_below_the_latest_applied_one_is_still_applied(
    pg_dsn: str, pg_schema: str
) -> None:
    """Branches merged in any order: a schema that has every migration but one from the
    middle (0004 here) gets that one when a store opens, under its own number."""
    wanted = migrations()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _schema_by_hand(conn, pg_schema, [m for m in wanted if m[0] != 4])
    store = PostgresStore(pg_dsn, schema=pg_schema)
    keyed = store.add_work(WorkItem("", "t", "new", key="k"))  # 0004 gives items keys
    assert store.add_many([WorkItem("", "t", "again", key="k")]).present == [keyed]
    store.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(f"SELECT version, name FROM {pg_schema}.schema_version").fetchall()
    assert sorted(rows) == [(version, name) for version, name, _sql in wanted]


def test_a_schema_at_0009_migrates_and_its_claims_still_expire_leases(
    pg_dsn: str, pg_schema: str
) -> None:
    """Migration 0010 gives swarm_claim and swarm_claim_many one shared lease check:
    items held at version 9 whose leases run out are returned by either claim after."""
    wanted = migrations()
    assert [name for _number, name, _sql in wanted][8:10] == [
        "0009_claim_many.sql",
        "0010_expire_due.sql",
    ]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        _schema_by_hand(conn, pg_schema, wanted[:9])
        for n in range(1, 5):
            conn.execute(
                "INSERT INTO work_items (work_item_id, work_type, description, priority,"
                " priority_rank, status, max_attempts, created_at, updated_at)"
                " VALUES (%s, 't', 'from version 9', 'medium', 2, 'pending', 3, %s, %s)",
                (f"old_{n}", n, n),
            )
        held = conn.execute(
            "SELECT work_item_id FROM swarm_claim_many('old', 30, NULL, NULL, 2)"
        ).fetchall()
        assert held == [("old_1",), ("old_2",)]
    clock = PgClock(pg_dsn, pg_schema)
    clock.advance(60)  # both leases taken at version 9 have run out
    store = PostgresStore(pg_dsn, schema=pg_schema, lease_s=30)
    with psycopg.connect(pg_dsn) as conn:
        versions = conn.execute(f"SELECT version FROM {pg_schema}.schema_version").fetchall()
    assert sorted(versions) == [(number,) for number, _name, _sql in wanted]
    # swarm_claim returns both expired items to the queue, then claims the first.
    claimed = store.claim("a1")
    assert claimed is not None and (claimed.work_item_id, claimed.attempts) == ("old_1", 1)
    back = store.get("old_2")
    assert (back.status, back.agent_id, back.attempts) == ("pending", None, 1)
    # swarm_claim_many does the same: a1's lease runs out, and old_1 heads the batch again.
    clock.advance(60)
    batch = claim_many(store, "a2", count=4)
    assert [(i.work_item_id, i.attempts) for i in batch] == [
        ("old_1", 2),
        ("old_2", 1),
        ("old_3", 0),
        ("old_4", 0),
    ]
    with psycopg.connect(pg_dsn) as conn:
        expired = conn.execute(
            f"SELECT work_item_id, agent_id FROM {pg_schema}.events WHERE op = 'expire' ORDER BY id"
        ).fetchall()
    assert expired == [("old_1", None), ("old_2", None), ("old_1", None)]
    store.close()
