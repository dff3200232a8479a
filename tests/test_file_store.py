"""What only the file backend has: journal records, torn writes, compaction, the lock."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import LockTimeout, StorageFull
from orchestrator.records import Agent, WorkItem
from orchestrator.store import journal
from orchestrator.store.file import FileStore

from .conftest import fill_disk


def _item(n: int, **extra: object) -> WorkItem:
    return WorkItem(work_item_id=f"w{n:05d}", work_type="t", description=f"item {n}", **extra)  # type: ignore[arg-type]


def _journal(path: Path) -> Path:
    return path / FileStore.JOURNAL


def test_records_carry_a_checksum_and_decode_only_when_intact() -> None:
    line = journal.encode({"op": "add", "items": [{"x": 1}]})
    assert json.loads(line)["e"]["op"] == "add"
    assert journal.decode(line) == {"op": "add", "items": [{"x": 1}]}
    flipped = line.replace(b'"x":1', b'"x":3')
    assert journal.decode(flipped) is None
    assert journal.decode(line[:-1]) is None


def test_every_operation_is_one_journal_record(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.register(Agent(agent_id="a1"))
    work_id = store.add_work(_item(1))
    store.claim("a1")
    store.progress(work_id, 50, agent_id="a1")
    store.complete(work_id, agent_id="a1")
    ops = [json.loads(line)["e"]["op"] for line in _journal(tmp_path).read_bytes().splitlines()]
    assert ops == ["generation", "register", "add", "claim", "progress", "complete"]


def test_journal_cut_at_every_offset_of_last_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "source"
    store = FileStore(source)
    ids = [store.add_work(_item(n)) for n in range(5)]
    store.claim("a1")
    store.close()
    whole = _journal(source).read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start, len(whole)):
        copy = tmp_path / f"cut{cut}"
        copy.mkdir()
        _journal(copy).write_bytes(whole[:cut])
        with caplog.at_level(logging.WARNING):
            reopened = FileStore(copy)
            items = {i.work_item_id: i for i in reopened.list_work()}
        assert sorted(items) == sorted(ids), cut
        assert all(i.status == "pending" for i in items.values()), cut  # the claim was cut
        if cut > last_start:
            assert reopened.dropped_records == 1
            assert "torn record" in caplog.text
        # The torn tail is cut away so the next append starts on a clean line.
        assert _journal(copy).read_bytes() == whole[:last_start]
        reopened.claim("a2")
        reopened.close()
        assert FileStore(copy).get(ids[0]).agent_id == "a2"
        caplog.clear()


def test_a_flipped_bit_inside_a_record_drops_only_that_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStore(tmp_path)
    ids = [store.add_work(_item(n)) for n in range(3)]
    store.close()
    lines = _journal(tmp_path).read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"item 1", b"itew 1")  # the second add
    _journal(tmp_path).write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING):
        reopened = FileStore(tmp_path)
        assert [i.work_item_id for i in reopened.list_work()] == [ids[0], ids[2]]
    assert "corrupt record" in caplog.text
    assert reopened.dropped_records == 1


def test_compaction_writes_jq_readable_snapshots_and_new_generation(tmp_path: Path) -> None:
    store = FileStore(tmp_path, archive_after_s=3600)
    store.register(Agent(agent_id="a1", specialization="backend"))
    ids = [store.add_work(_item(n, team="core")) for n in range(3)]
    store.claim("a1")
    store.compact()
    claims = json.loads((tmp_path / FileStore.WORK).read_text())
    agents = json.loads((tmp_path / FileStore.AGENTS).read_text())
    assert [c["work_item_id"] for c in claims] == ids
    assert {
        "work_item_id",
        "agent_id",
        "work_type",
        "priority",
        "description",
        "status",
        "team",
        "progress",
        "claimed_at",
    } <= set(claims[0])
    assert claims[0]["status"] == "claimed" and claims[0]["agent_id"] == "a1"
    assert agents[0]["agent_id"] == "a1"
    assert (tmp_path / "journal" / "gen-000001.jsonl").exists()
    assert len(_journal(tmp_path).read_bytes().splitlines()) == 1  # only the header
    reopened = FileStore(tmp_path)
    assert [i.status for i in reopened.list_work()] == ["claimed", "pending", "pending"]


def test_other_handles_follow_compactions_even_two_behind(tmp_path: Path) -> None:
    writer, reader = FileStore(tmp_path), FileStore(tmp_path)
    first = writer.add_work(_item(1))
    assert reader.get(first).status == "pending"
    writer.claim("a1")
    writer.compact()
    second = writer.add_work(_item(2))
    assert reader.get(first).status == "claimed"  # followed one generation
    writer.compact()
    writer.compact()
    third = writer.add_work(_item(3))
    assert {i.work_item_id for i in reader.list_work()} == {first, second, third}


def test_compaction_archives_old_finished_items(tmp_path: Path) -> None:
    now = [1000.0]
    store = FileStore(tmp_path, archive_after_s=60, clock=lambda: now[0])
    other = FileStore(tmp_path, archive_after_s=60, clock=lambda: now[0])
    done = store.claim_new("a1", _item(1)).work_item_id
    store.complete(done, agent_id="a1")
    live = store.add_work(_item(2))
    now[0] += 120
    assert store.compact() == 1
    archived = [json.loads(x) for x in (tmp_path / "work_archive.jsonl").read_text().splitlines()]
    assert [a["work_item_id"] for a in archived] == [done]
    assert [i.work_item_id for i in store.list_work()] == [live]
    assert [i.work_item_id for i in other.list_work()] == [live]  # purged there too
    assert [i.work_item_id for i in FileStore(tmp_path).list_work()] == [live]


def test_automatic_compaction_keeps_the_journal_and_memory_small(tmp_path: Path) -> None:
    store = FileStore(tmp_path, compact_bytes=20_000, archive_after_s=0)
    for n in range(300):
        work_id = store.claim_new("a1", _item(n)).work_item_id
        store.complete(work_id, agent_id="a1")
        assert _journal(tmp_path).stat().st_size < 22_000
    assert len(list((tmp_path / "journal").iterdir())) >= 10
    archived = (tmp_path / "work_archive.jsonl").read_text().splitlines()
    live = FileStore(tmp_path).list_work()
    assert len(archived) + len(live) == 300
    assert len(live) < 60


def test_journal_may_grow_to_twice_the_snapshot_before_compacting(tmp_path: Path) -> None:
    store = FileStore(tmp_path, compact_bytes=20_000)
    for n in range(300):
        store.add_work(_item(n))
    snapshot = (tmp_path / FileStore.WORK).stat().st_size
    assert _journal(tmp_path).stat().st_size <= max(20_000, 2 * snapshot) + 1_000
    assert len(FileStore(tmp_path).list_work()) == 300


def test_crash_between_snapshot_and_journal_swap_is_harmless(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    ids = [store.add_work(_item(n)) for n in range(3)]
    store.claim("a1")
    journal_before = _journal(tmp_path).read_bytes()
    store.compact()
    # Put back the old journal: as if the process died after writing the snapshot, before
    # it kept the journal in the history.
    _journal(tmp_path).unlink()
    (tmp_path / "journal" / "gen-000001.jsonl").unlink()
    _journal(tmp_path).write_bytes(journal_before)
    reopened = FileStore(tmp_path)
    assert [i.status for i in reopened.list_work()] == ["claimed", "pending", "pending"]
    assert [i.work_item_id for i in reopened.list_work()] == ids


def test_disk_full_fails_cleanly_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    kept = store.add_work(_item(1))
    size = _journal(tmp_path).stat().st_size
    fill_disk(monkeypatch)  # a partial record reaches the disk, then ENOSPC
    with pytest.raises(StorageFull):
        store.claim("a1")
    monkeypatch.undo()
    assert _journal(tmp_path).stat().st_size == size
    assert store.get(kept).status == "pending"
    assert store.claim("a1").work_item_id == kept


def test_corrupt_snapshot_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / FileStore.WORK).write_text("{not json")
    from orchestrator.errors import StoreError

    with pytest.raises(StoreError, match=r"work_snapshot\.json is not valid JSON"):
        FileStore(tmp_path).list_work()


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)
"""


def test_lock_wait_honours_flock_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    FileStore(tmp_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(tmp_path / ".lock")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        monkeypatch.setenv("FLOCK_TIMEOUT", "0.5")
        store = FileStore(tmp_path)
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="FLOCK_TIMEOUT"):
            store.list_work()
        assert 0.4 < time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert store.list_work() == []  # usable again once the holder is gone


def test_store_files_are_not_world_writable(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    store.add_work(_item(1))
    store.compact()
    for path in (tmp_path / "s").rglob("*"):
        assert not path.stat().st_mode & 0o002, path


# -- work keys ---------------------------------------------------------------------------


def test_keys_survive_replay_and_compaction_and_archival_frees_them(tmp_path: Path) -> None:
    now = [1000.0]
    store = FileStore(tmp_path, archive_after_s=60, clock=lambda: now[0])
    other = FileStore(tmp_path, archive_after_s=60, clock=lambda: now[0])
    done = store.claim_new("a1", _item(1, key="done")).work_item_id
    store.complete(done, agent_id="a1")
    live = store.add_work(_item(2, key="live"))
    # Replayed from the journal by another handle and by a fresh process.
    assert other.add_many([_item(3, key="done"), _item(4, key="live")]).present == [done, live]
    assert FileStore(tmp_path).add_work(_item(5, key="live")) == live
    store.compact()  # nothing old enough to archive yet: the snapshot carries the keys
    assert json.loads((tmp_path / FileStore.WORK).read_text())[0]["key"] == "done"
    assert FileStore(tmp_path).add_many([_item(6, key="done")]).present == [done]
    now[0] += 120
    assert store.compact() == 1  # archives `done`, which frees its key, in every handle
    assert json.loads((tmp_path / "work_archive.jsonl").read_text())["key"] == "done"
    again = other.add_many([_item(7, key="done"), _item(8, key="live")])
    assert again.new == (True, False) and again[1] == live
    assert store.add_work(_item(9, key="done")) == again[0]
    assert sorted(i.key for i in FileStore(tmp_path).list_work()) == ["done", "live"]


def test_a_store_written_before_keys_existed_still_opens(tmp_path: Path) -> None:
    """Snapshots and journal records of the previous version have no "key" at all."""
    old = {
        "work_type": "t",
        "description": "old",
        "priority": "medium",
        "team": None,
        "status": "pending",
        "agent_id": None,
        "progress": 0,
        "payload": None,
        "result": None,
        "completion_status": None,
        "story_points": None,
        "error": None,
        "attempts": 0,
        "max_attempts": 3,
        "created_at": 1.0,
        "updated_at": 1.0,
        "claimed_at": None,
        "completed_at": None,
        "lease_expires_at": None,
        "trace_context": None,
    }
    (tmp_path / "work_claims.json").write_text(json.dumps([old | {"work_item_id": "w00001"}]))
    header = {"op": "generation", "gen": 1, "purge_before": 0.0, "ts": 1.0}
    added = {"op": "add", "ts": 2.0, "items": [old | {"work_item_id": "w00002"}]}
    _journal(tmp_path).write_bytes(journal.encode(header) + journal.encode(added))
    store = FileStore(tmp_path)
    assert [(i.work_item_id, i.key) for i in store.list_work()] == [
        ("w00001", None),
        ("w00002", None),
    ]
    claimed = store.claim("a1")
    assert claimed is not None and claimed.key is None and claimed.to_dict()["key"] is None
    keyed = store.add_work(_item(3, key="new"))
    store.compact()
    reopened = FileStore(tmp_path)
    assert {i.work_item_id: i.key for i in reopened.list_work()} == {
        "w00001": None,
        "w00002": None,
        keyed: "new",
    }
    assert reopened.add_work(_item(4, key="new")) == keyed


def test_a_snapshot_holding_one_key_twice_is_one_clear_error(tmp_path: Path) -> None:
    from orchestrator.errors import StoreError

    store = FileStore(tmp_path)
    store.add_many([_item(1, key="k"), _item(2)])
    store.compact()
    claims = json.loads((tmp_path / FileStore.WORK).read_text())
    claims[1]["key"] = "k"  # as a hand edit with jq might leave it
    (tmp_path / FileStore.WORK).write_text(json.dumps(claims))
    with pytest.raises(StoreError, match=r"record 1 is not valid \(key 'k' is also held by w00001"):
        FileStore(tmp_path).list_work()
