"""The store's named records: the same contract on every backend (see conftest), and
claims decided once among real processes."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Conflict, InvalidArgument, NotFound
from orchestrator.store import open_backend


def test_claim_get_update_drop_round_trip(store: Any) -> None:
    record = store.claim_record("port", "4001", {"owner": "login", "n": 1})
    assert (record.namespace, record.key, record.value) == (
        "port",
        "4001",
        {"owner": "login", "n": 1},
    )
    assert record.created_at > 0 and record.updated_at == record.created_at
    assert store.get_record("port", "4001").value == {"owner": "login", "n": 1}
    updated = store.update_record("port", "4001", {"owner": "login", "n": 2})
    assert updated.value["n"] == 2 and updated.created_at == record.created_at
    assert updated.updated_at >= record.updated_at
    assert store.drop_record("port", "4001").value["n"] == 2
    with pytest.raises(NotFound):
        store.get_record("port", "4001")


def test_a_taken_name_is_a_conflict_and_namespaces_are_separate(store: Any) -> None:
    store.claim_record("port", "4001", {"owner": "a"})
    with pytest.raises(Conflict):
        store.claim_record("port", "4001", {"owner": "b"})
    store.claim_record("database", "4001", {"owner": "b"})
    assert store.get_record("port", "4001").value == {"owner": "a"}
    assert [r.key for r in store.list_records("database")] == ["4001"]


def test_list_is_by_key_and_missing_names_are_not_found(store: Any) -> None:
    for key in ("b", "c", "a"):
        store.claim_record("worktree", key, {})
    assert [r.key for r in store.list_records("worktree")] == ["a", "b", "c"]
    assert store.list_records("nothing") == []
    with pytest.raises(NotFound):
        store.update_record("worktree", "zz", {})
    with pytest.raises(NotFound):
        store.drop_record("worktree", "zz")


def test_bad_names_are_refused(store: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.claim_record("port", "", {})
    with pytest.raises(InvalidArgument):
        store.claim_record("bad namespace", "k", {})


def test_another_handle_sees_the_records(make_store: Any) -> None:
    first, second = make_store(), make_store()
    first.claim_record("port", "5000", {"owner": "x"})
    assert second.get_record("port", "5000").value == {"owner": "x"}
    second.drop_record("port", "5000")
    assert first.list_records("port") == []


def _claim_first_free(target: str, namespace: str, out: Any) -> None:
    store = open_backend(target) if "://" not in target else None
    if store is None:
        from orchestrator.store.postgres import PostgresStore

        dsn, schema = target.split("#")
        store = PostgresStore(dsn, schema=schema)
    try:
        for n in range(100):
            try:
                store.claim_record(
                    namespace, str(n), {"by": multiprocessing.current_process().name}
                )
            except Conflict:
                continue
            out.put(n)
            return
    finally:
        store.close()


def test_processes_claiming_at_once_each_get_a_different_name(
    backend: str, make_store: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_store()  # create the store (and the schema) first
    if backend == "postgres":
        target = f"{request.getfixturevalue('pg_dsn')}#{request.getfixturevalue('pg_schema')}"
    else:
        target = str(tmp_path / "store")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_first_free, args=(target, "slot", out)) for _ in range(8)]
    for proc in procs:
        proc.start()
    got = sorted(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert got == list(range(8))
    assert [r.key for r in make_store().list_records("slot")] == sorted(str(n) for n in range(8))


def test_every_change_is_in_the_operation_log(
    backend: str, store: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store.claim_record("port", "1", {})
    store.update_record("port", "1", {"n": 1})
    store.get_record("port", "1")  # reads are not logged
    with pytest.raises(Conflict):
        store.claim_record("port", "1", {})  # nor refusals
    store.drop_record("port", "1")
    if backend == "postgres":
        import psycopg

        dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                f"SELECT op, status FROM {schema}.events WHERE op LIKE 'record.%%' ORDER BY id"
            ).fetchall()
        logged = [(op, where) for op, where in rows]
    else:
        lines = (tmp_path / "store" / "named_records.log.jsonl").read_text().splitlines()
        logged = [(e["op"], f"{e['namespace']}:{e['key']}") for e in map(json.loads, lines)]
    assert logged == [
        ("record.claim", "port:1"),
        ("record.update", "port:1"),
        ("record.drop", "port:1"),
    ]
