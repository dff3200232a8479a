"""The journal format: a store written by an earlier version (every record a whole
item version, tests/data/store_v1 from commit de268af) opens in this one, and records
written from then on carry only what changed yet read back to the same state."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator.errors import StoreError
from orchestrator.records import WorkItem
from orchestrator.store import journal
from orchestrator.store.file import FileStore

DATA = Path(__file__).parent / "data"
LATER = 1_764_000_100.0  # after every time in the fixture, before any of its leases end


def _open(path: Path) -> FileStore:
    return FileStore(path, clock=lambda: LATER, lease_s=3600.0, archive_after_s=1e9)


def _state(store: FileStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [asdict(i) for i in store.list_work()], [asdict(a) for a in store.list_agents()]


def _records(path: Path) -> list[dict[str, Any]]:
    events = [journal.decode(line) for line in path.read_bytes().splitlines(keepends=True)]
    assert None not in events
    return [e for e in events if e is not None]


def test_a_store_in_the_previous_format_opens_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "store"
    shutil.copytree(DATA / "store_v1", path)
    expected = json.loads((DATA / "store_v1_expected.json").read_text())
    old_records = _records(path / "journal.jsonl")
    assert all(journal.is_whole(i) for e in old_records for i in e.get("items", ()))

    reader = _open(path)  # opened before the writes below: catches up on them
    assert _state(reader) == (expected["items"], expected["agents"])
    writer = _open(path)
    assert _state(writer) == (expected["items"], expected["agents"])
    claimed = writer.claim("a1")
    assert claimed is not None and claimed.work_item_id == "w4"  # medium, then oldest
    writer.progress("w0", 70, agent_id="a2")
    done = writer.complete("w4", "success", 2, {"ok": True}, agent_id="a1")
    writer.add_work(WorkItem(work_item_id="w9", work_type="bug", description="new"))

    new_records = _records(path / "journal.jsonl")[len(old_records) :]
    assert [e["op"] for e in new_records] == ["claim", "progress", "complete", "add"]
    changes = [e["items"][0] for e in new_records]
    # Changed fields only, the item and the agent recoverable from each record.
    assert [journal.is_whole(i) for i in changes] == [False, False, False, True]
    assert changes[0]["work_item_id"] == "w4" and changes[0]["agent_id"] == "a1"
    assert "description" not in changes[0] and "payload" not in changes[2]
    assert new_records[2]["by"] == "a1" and changes[2]["result"] == {"ok": True}

    after = _state(writer)
    assert asdict(done) in after[0]
    assert _state(reader) == after  # replayed the new records onto the old ones
    fresh = _open(path)
    assert _state(fresh) == after  # old snapshot + mixed journal, from disk
    fresh.compact()
    for store in (reader, writer, fresh):
        store.close()
    reopened = _open(path)
    assert _state(reopened) == after
    reopened.close()


def test_a_change_record_holds_only_the_changed_fields() -> None:
    old = WorkItem(work_item_id="w1", work_type="bug", description="d", created_at=5.0)
    new = old.evolve(status="claimed", agent_id="a1", updated_at=6.0)
    assert journal.item_record(None, new) is new
    assert journal.item_record(old, new) == {
        "work_item_id": "w1",
        "status": "claimed",
        "agent_id": "a1",
        "updated_at": 6.0,
    }
    other = new.evolve(created_at=7.0)  # another item under a reused id: written whole
    assert journal.item_record(old, other) is other
    rebuilt = WorkItem(**{**new.__dict__, "created_at": float("5.0")})  # equal, not the same
    assert journal.is_whole(new.__dict__) and not journal.is_whole(
        journal.item_record(old, rebuilt)  # type: ignore[arg-type]
    )


def test_a_record_this_version_cannot_read_stops_the_store_and_names_where(
    tmp_path: Path,
) -> None:
    """A checksummed record of an unknown shape (a newer version's, say) is an error
    naming the journal bytes it lies between, not a record silently skipped."""
    path = tmp_path / "store"
    writer = _open(path)
    writer.add_work(WorkItem(work_item_id="w1", work_type="t", description="d"))
    journal_file = path / "journal.jsonl"
    before = journal_file.stat().st_size
    with journal_file.open("ab") as fh:
        fh.write(journal.encode({"op": "claim", "ts": LATER, "items": [{"status": "claimed"}]}))
    reader = _open(path)
    try:
        reader.list_work()
    except StoreError as exc:
        message = str(exc)
    else:
        raise AssertionError("a record without a work item id was accepted")
    finally:
        reader.close()
    assert "does not fit this version of swarmsh" in message
    assert f"and {journal_file.stat().st_size}" in message
    assert int(message.split("between bytes ")[1].split()[0]) < before
    writer.close()
