"""The PostgreSQL operation-log reader: an open transaction's start makes a poll read the
rows at that exact time, not every row since it."""

from __future__ import annotations

import psycopg
import pytest

from orchestrator.records import WorkItem
from orchestrator.store import pg_changes
from orchestrator.store.pg_changes import PgChanges
from orchestrator.store.postgres import PostgresStore

from .conftest import wait_for


def _ids(reader: PgChanges) -> list[str]:
    return [item["work_item_id"] for change in reader.poll() for item in change.items]


def _gather(reader: PgChanges, into: list[str], until: int) -> bool:
    into.extend(_ids(reader))
    return len(into) >= until


def _move_past(reader: PgChanges, store: PostgresStore, moment: float) -> list[str]:
    """Changes until the reader is a second past ``moment`` (by the database's clock):
    what it returned meanwhile."""
    seen: list[str] = []

    def moved_on() -> bool:
        store.add_work(WorkItem(f"x{len(seen)}", "t", "meanwhile"))
        seen.extend(_ids(reader))
        return reader.since > moment + 1

    wait_for(moved_on, timeout=30)
    return seen


def _open_transaction(pg_dsn: str, pg_schema: str, events: int) -> tuple[psycopg.Connection, float]:
    """A connection whose open transaction has logged ``events`` adds, and its start."""
    conn = psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}")
    row = conn.execute(
        "INSERT INTO events (ts, op, work_item_id, status)"
        " SELECT swarm_now(), 'add', 'slow_' || n, 'pending' FROM generate_series(1, %s) n"
        " RETURNING ts",
        (events,),
    ).fetchone()
    assert row is not None
    return conn, float(row[0])


def test_an_old_transaction_start_seen_once_sends_nothing_again(
    pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_changes, "_HORIZON_S", 0.2)
    store = PostgresStore(pg_dsn, schema=pg_schema)
    try:
        reader = PgChanges(store)
        reader.seek_end()
        store.add_many([WorkItem(f"w{n}", "t", "early") for n in range(5)])
        began = reader.since
        early: list[str] = []
        wait_for(lambda: _gather(reader, early, 5), timeout=30)
        assert sorted(early) == [f"w{n}" for n in range(5)]
        # Later changes move the reader past the horizon: the early rows leave its memory.
        assert not set(_move_past(reader, store, began)) & set(early)
        # PostgreSQL briefly reports a LISTEN connection's last statement start as an open
        # transaction's start while it takes a notification: a start from before the early
        # rows, seen by one poll only.
        real = reader._open_starts
        now, _ = real()
        monkeypatch.setattr(reader, "_open_starts", lambda: (now, [began - 0.1]))
        assert _ids(reader) == []
        monkeypatch.setattr(reader, "_open_starts", real)
        assert _ids(reader) == []
    finally:
        store.close()


def test_rows_at_an_open_transactions_start_come_when_it_commits(
    pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_changes, "_HORIZON_S", 0.2)
    store = PostgresStore(pg_dsn, schema=pg_schema)
    reader = PgChanges(store)
    reader.seek_end()
    slow, began = _open_transaction(pg_dsn, pg_schema, 1)
    try:
        assert "slow_1" not in _move_past(reader, store, began)
        slow.commit()
        late: list[str] = []
        wait_for(lambda: _gather(reader, late, 1), timeout=30)
        assert late == ["slow_1"]
        assert _ids(reader) == []
    finally:
        slow.close()
        store.close()


def test_a_big_transaction_is_read_whole_past_the_batch_limit(
    pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_changes, "_HORIZON_S", 0.2)
    monkeypatch.setattr(pg_changes, "_BATCH", 10)
    store = PostgresStore(pg_dsn, schema=pg_schema)
    reader = PgChanges(store)
    reader.seek_end()
    big, began = _open_transaction(pg_dsn, pg_schema, 35)
    try:
        _move_past(reader, store, began)
        big.commit()
        # Committed between two polls: only the poll before this one saw it open.
        late: list[str] = []
        wait_for(lambda: _gather(reader, late, 35), timeout=30)
        assert sorted(late) == sorted(f"slow_{n}" for n in range(1, 36))
        assert _ids(reader) == []
    finally:
        big.close()
        store.close()
