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

from orchestrator.errors import StorageFull, StoreError
from orchestrator.records import Agent, WorkItem
from orchestrator.store import sql_state
from orchestrator.store.file import FileStore

from .conftest import fill_disk

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


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each rebuild of the database from the files."""
    loads: list[int] = []
    real_load = FileStore._load

    def counted(self: FileStore, split: bool = True) -> None:
        loads.append(1)
        real_load(self, split)

    monkeypatch.setattr(FileStore, "_load", counted)
    return loads


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


def _fail_puts_of(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    """Make the database refuse to store any item reaching ``status`` (a disk error)."""
    real = sql_state.SqlState.put_item

    def put_item(self: sql_state.SqlState, item: WorkItem) -> None:
        if item.status == status:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        real(self, item)

    monkeypatch.setattr(sql_state.SqlState, "put_item", put_item)


def test_an_operation_the_database_could_not_take_stands_and_is_not_compacted_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its journal record is kept, so it is acknowledged; a compaction due in the same
    transaction would snapshot the database without it, so it waits."""
    store = FileStore(tmp_path, compact_bytes=4096)
    work_id = store.add_work(_item(1))
    store.claim("a1")
    n = 0
    while store._offset + 400 < store._compact_at:
        store.register(Agent(agent_id=f"agent-{n}"))
        n += 1
    _fail_puts_of(monkeypatch, "completed")
    kept = "k" * 800  # its record alone crosses the compaction threshold
    done = store.complete(work_id, agent_id="a1", result=kept)
    assert done.status == "completed" and store._offset >= store._compact_at
    assert not (tmp_path / "journal" / "gen-000001.jsonl").exists()  # not compacted
    monkeypatch.undo()
    store.close()
    reopened = FileStore(tmp_path)
    assert (reopened.get(work_id).status, reopened.get(work_id).result) == ("completed", kept)
    reopened.close()


def test_after_a_record_the_database_missed_the_transaction_records_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired lease returned in the journal but not in the database: the claim that
    follows in the same transaction would be planned on a stale state, so it is refused
    (one line), and the next one sees the expiry."""
    store = FileStore(tmp_path, lease_s=0.0)
    first = store.add_work(_item(1))
    store.claim("a1")  # its lease is over at once
    _fail_puts_of(monkeypatch, "pending")
    with pytest.raises(StoreError, match=r"cannot use .*state\.sqlite: disk I/O error"):
        store.claim("a2")
    monkeypatch.undo()
    again = store.claim("a2", lease_s=60.0)
    assert again is not None and again.work_item_id == first and again.attempts == 1
    store.close()


def test_a_database_error_while_writing_the_views_costs_a_warning_not_the_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path, views_interval_s=0.0)

    def damaged(self: sql_state.Items) -> list[WorkItem]:
        raise sqlite3.DatabaseError("database disk image is malformed (injected)")

    monkeypatch.setattr(sql_state.Items, "values", damaged)
    with caplog.at_level(logging.WARNING):
        work_id = store.add_work(_item(1))  # acknowledged: no retry, no second item
    monkeypatch.undo()
    assert "could not read the index for the views" in caplog.text
    assert [i.work_item_id for i in store.list_work()] == [work_id]
    store.close()


def test_a_snapshot_value_the_database_cannot_hold_is_one_clear_error(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.add_work(_item(1))
    store.compact()
    store.close()
    snapshot = tmp_path / FileStore.WORK
    snapshot.write_text(snapshot.read_text().replace('"team": null', '"team": ["red", "blue"]'))
    for _ in range(2):  # the same answer each time: no index deleted and rebuilt in a loop
        with pytest.raises(StoreError, match=r"work_snapshot\.json: record 0 is not valid"):
            FileStore(tmp_path).list_work()
    assert not any("damaged" in p.name for p in tmp_path.iterdir())


def test_a_torn_record_cut_once_does_not_make_every_process_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    store.add_many([_item(n) for n in range(3)])
    store.close()
    with (tmp_path / FileStore.JOURNAL).open("ab") as journal_file:
        journal_file.write(b'{"c":1,"e":{"op":"claim","items":[{"work_it')  # a killed writer
    loads = _count_loads(monkeypatch)
    first = FileStore(tmp_path)
    first.get("w00001")  # cuts the torn tail: the journal's time of change moves
    first.close()
    for _ in range(3):
        later = FileStore(tmp_path)
        later.get("w00001")
        later.close()
    assert loads == []


def test_a_record_cut_after_a_full_disk_does_not_make_the_next_operation_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    kept = store.add_work(_item(1))
    fill_disk(monkeypatch)
    with pytest.raises(StorageFull):
        store.claim("a1")
    monkeypatch.undo()
    loads = _count_loads(monkeypatch)
    claimed = store.claim("a1")
    other = FileStore(tmp_path)
    assert claimed is not None and claimed.work_item_id == kept
    assert other.get(kept).status == "claimed"
    assert loads == []


def test_an_interrupt_while_committing_leaves_no_transaction_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    store.add_many([_item(n) for n in range(2)])

    def interrupted(self: sql_state.SqlState) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sql_state.SqlState, "commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.claim("a1")
    monkeypatch.undo()
    assert store._state is not None and not store._state.db.in_transaction
    other = FileStore(tmp_path, lock_timeout_s=5.0)
    taken = other.claim("a2")  # SQLite's write lock is free: no wait for its timeout
    # The interrupted claim is in the journal: the other process applied it first.
    assert taken is not None and taken.work_item_id == "w00001"
    assert other.get("w00000").agent_id == "a1"
    other.close()
    store.close()


def test_a_database_made_again_by_another_process_is_followed(tmp_path: Path) -> None:
    """A process that found the index damaged deleted it and built it again: the others
    move to the new file instead of keeping the deleted one up to date."""
    one = FileStore(tmp_path)
    one.add_many([_item(n) for n in range(3)])
    assert one.claim("a1") is not None
    other = FileStore(tmp_path)
    other.get("w00000")
    with other._mutex:
        other._lock.acquire()
        other._discard_state()  # what a process finding it damaged does
        other._lock.release()
    claimed = other.claim("a2")  # builds it again from the journal
    assert claimed is not None and claimed.work_item_id == "w00001"
    mine = one.claim("a1")
    assert mine is not None and mine.work_item_id == "w00002"
    assert one._state is not None and one._state.is_current()
    one.close()
    other.close()


def test_a_compaction_gives_the_disk_back_the_room_archived_items_left(tmp_path: Path) -> None:
    store = FileStore(tmp_path, archive_after_s=0.0, compact_bytes=1 << 40)
    ids = store.add_many(
        [
            WorkItem(work_item_id=f"w{n:05d}", work_type="t", description="x" * 2000)
            for n in range(1500)
        ]
    ).ids
    for _ in range(1400):
        held = store.claim("a1")
        assert held is not None
        store.complete(held.work_item_id, agent_id="a1")
    state = tmp_path / FileStore.STATE
    peak = state.stat().st_size

    assert store.compact() == 1400  # the finished items go to the archive

    assert state.stat().st_size < peak / 3
    assert Path(str(state) + "-wal").stat().st_size == 0
    other = FileStore(tmp_path)  # another process's view of the rewritten file
    assert [item.work_item_id for item in other.list_work()] == list(ids[1400:])
    assert other.claim("a2") is not None
    assert store.get(ids[1401]).status in {"pending", "claimed"}


# Another kind of reader (a sqlite3 shell) keeps a read transaction open on the database.
_READER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN")
db.execute("SELECT count(*) FROM items").fetchone()
print("reading", flush=True)
sys.stdin.readline()
"""


def test_a_compaction_with_a_reader_on_the_database_keeps_everything(tmp_path: Path) -> None:
    store = FileStore(tmp_path, archive_after_s=0.0, compact_bytes=1 << 40)
    ids = store.add_many([_item(n) for n in range(300)]).ids
    for _ in range(200):
        held = store.claim("a1")
        assert held is not None
        store.complete(held.work_item_id, agent_id="a1")
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(tmp_path / FileStore.STATE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "reading\n"
        assert store.compact() == 200  # the log cannot be emptied under the reader
        assert [i.work_item_id for i in FileStore(tmp_path).list_work()] == list(ids[200:])
    finally:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.close()
        reader.wait()
        reader.stdout.close()
    assert store.claim("a1") is not None
    store.close()
