"""The file store's database index (``state.sqlite``) against its journal: a writer
killed between the two, an index deleted, damaged or left behind by its files."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.records import Agent, WorkItem
from orchestrator.store import sql_state
from orchestrator.store.file import FileStore

# A child that claims one item and is killed (SIGKILL, from itself) at the point named:
# after its journal record is written, before the database commits it.
_KILLED_WRITER = """
import os, signal, sys
from orchestrator.store import sql_state
from orchestrator.store import sql_state
from orchestrator.store.file import FileStore

def killed(self):
    os.kill(os.getpid(), signal.SIGKILL)

store = FileStore(sys.argv[1])
sql_state.SqlState.commit = killed
store.claim("a-killed")
"""


def _item(n: int) -> WorkItem:
    return WorkItem(work_item_id=f"w{n:05d}", work_type="t", description=f"item {n}")


def _state_files(path: Path) -> list[Path]:
    return [path / (FileStore.STATE + suffix) for suffix in ("", "-wal", "-shm")]


def test_a_writer_killed_between_its_journal_record_and_its_commit_loses_nothing(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    first, second = store.add_work(_item(1)), store.add_work(_item(2))
    store.close()
    child = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], check=False)
    assert child.returncode == -signal.SIGKILL
    # The claim is in the journal; the database never committed it.
    assert b'"op":"claim"' in (tmp_path / FileStore.JOURNAL).read_bytes()
    reopened = FileStore(tmp_path)
    held = reopened.get(first)
    assert (held.status, held.agent_id) == ("claimed", "a-killed")
    claimed = reopened.claim("a2")  # the killed claim is not handed out twice
    assert claimed is not None and claimed.work_item_id == second
    assert reopened.claim("a3") is None
    reopened.close()


def test_a_deleted_index_is_rebuilt_from_the_snapshot_and_journal(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.register(Agent(agent_id="a1"))
    ids = [store.add_work(_item(n)) for n in range(5)]
    store.claim("a1")
    store.compact()  # some of the state now lives in the snapshot
    store.complete(ids[0], agent_id="a1")
    before = [(i.work_item_id, i.status, i.agent_id) for i in store.list_work()]
    store.close()
    for file in _state_files(tmp_path):
        file.unlink(missing_ok=True)
    reopened = FileStore(tmp_path)
    assert [(i.work_item_id, i.status, i.agent_id) for i in reopened.list_work()] == before
    assert [a.agent_id for a in reopened.list_agents()] == ["a1"]
    assert (tmp_path / FileStore.STATE).exists()
    reopened.close()


def test_a_damaged_index_is_rebuilt_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path)
    ids = [store.add_work(_item(n)) for n in range(3)]
    store.close()
    for file in _state_files(tmp_path):
        file.unlink(missing_ok=True)
    (tmp_path / FileStore.STATE).write_bytes(os.urandom(8192))
    with caplog.at_level(logging.WARNING):
        reopened = FileStore(tmp_path)
        assert [i.work_item_id for i in reopened.list_work()] == ids
    assert "state.sqlite is damaged" in caplog.text
    reopened.close()


def test_an_index_older_than_its_store_files_is_not_trusted(tmp_path: Path) -> None:
    """A store directory restored from a backup beside a newer index (or an index
    copied in from elsewhere): the files are what the store is."""
    store = FileStore(tmp_path)
    store.add_work(_item(1))
    store.close()
    backup = tmp_path.parent / "backup"
    shutil.copytree(tmp_path, backup)
    store = FileStore(tmp_path)
    store.add_work(_item(2))
    store.close()
    for file in _state_files(tmp_path):
        if file.exists():
            shutil.copy(file, backup / file.name)  # the index knows item 2
    restored = FileStore(backup)
    assert [i.work_item_id for i in restored.list_work()] == ["w00001"]
    restored.close()


def test_every_process_sees_each_change_at_once(tmp_path: Path) -> None:
    """Two stores (as two processes have) on one directory: no replay, one database."""
    one, two = FileStore(tmp_path), FileStore(tmp_path)
    work_id = one.add_work(_item(1))
    claimed = two.claim("a2")
    assert claimed is not None and claimed.work_item_id == work_id
    assert one.get(work_id).agent_id == "a2"
    one.complete(work_id, agent_id="a2")
    assert two.get(work_id).status == "completed"
    one.close()
    two.close()


def test_a_process_joining_a_store_compacts_only_when_the_journal_is_due(
    tmp_path: Path,
) -> None:
    """Due means ``compact_bytes`` and twice the snapshot, for a process that never
    loaded the snapshot too: else every agent starting on a large store compacted it."""
    first = FileStore(tmp_path, compact_bytes=1 << 30)
    first.add_many([_item(n) for n in range(200)])
    first.compact()  # generation 2: a snapshot of 200 items
    snapshot = (tmp_path / FileStore.WORK).stat().st_size
    while (tmp_path / FileStore.JOURNAL).stat().st_size < snapshot:
        first.add_work(WorkItem(work_item_id="", work_type="t", description="more"))
    first.close()
    joining = FileStore(tmp_path, compact_bytes=1024)  # journal over 1 KiB, under 2x snapshot
    joining.claim("a1")
    joining.close()
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == ["gen-000001.jsonl"]


def test_an_index_of_another_format_is_made_again(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    ids = [store.add_work(_item(n)) for n in range(3)]
    store.close()
    with sqlite3.connect(tmp_path / FileStore.STATE) as db:
        db.execute("DROP INDEX items_pending")  # what an older format would lack
        db.execute("PRAGMA user_version = 1")
    reopened = FileStore(tmp_path)
    claimed = reopened.claim("a1")
    assert claimed is not None and claimed.work_item_id == ids[0]
    assert [i.work_item_id for i in reopened.list_work()] == ids
    reopened.close()
    with sqlite3.connect(tmp_path / FileStore.STATE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == sql_state.FORMAT
        assert db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'items_pending'"
        ).fetchone() == (1,)


def test_no_operation_an_agent_makes_scans_every_item(tmp_path: Path) -> None:
    """Every statement a claim, heartbeat, progress, completion, enqueue, release or
    lease expiry runs is an index search: its cost does not grow with the queue."""
    store = FileStore(tmp_path, lease_s=0.0)  # every claim expires at the next operation
    store.add_many([_item(n) for n in range(200)])
    store.register(Agent(agent_id="a1"))
    assert store._state is not None
    statements: list[str] = []
    store._state.db.set_trace_callback(statements.append)
    expiring = store.claim("a1")
    assert expiring is not None and store.sweep()  # the lease query, and a return
    store = FileStore(tmp_path)
    assert store._state is None  # opened at the first operation
    store.list_agents()
    assert store._state is not None
    store._state.db.set_trace_callback(statements.append)
    held = store.claim("a1", lease_s=60.0)
    assert held is not None
    store.heartbeat("a1")
    store.progress(held.work_item_id, 50, agent_id="a1")
    store.complete(held.work_item_id, agent_id="a1")
    store.add_work(WorkItem(work_item_id="", work_type="t", description="more", key="k1"))
    store.claim_id("a1", "w00005")
    store.release_agent("a1")
    store.get("w00005")
    store._state.db.set_trace_callback(None)
    plans = {
        sql: [row[3] for row in store._state.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        for sql in set(statements)
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE"))
    }
    assert any("items_held" in " ".join(plan) for plan in plans.values())
    scans = {sql: plan for sql, plan in plans.items() if "SCAN items" in plan}
    assert not scans
    store.close()
