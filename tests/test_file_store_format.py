"""The journal format: a store written by an earlier version (every record a whole
item version, tests/data/store_v1 from commit de268af) opens in this one, and records
written from then on carry only what changed yet read back to the same state."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import StoreError
from orchestrator.records import WorkItem
from orchestrator.store import journal
from orchestrator.store.file import FileStore
from orchestrator.store.snapshot import Unsplittable, elements

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
    assert int(message.split("between bytes ")[1].split()[0]) <= before
    writer.close()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.lists(st.dictionaries(st.text(), _JSON, max_size=4), max_size=5))
def test_a_snapshot_reads_back_element_by_element_as_written(records: list[dict[str, Any]]) -> None:
    """As compaction and jq write it (indented), and compact: the same elements, whatever
    the strings hold (newlines, braces, the separator itself). An empty object is written
    on one line, which the split cannot take: it says so, and a whole parse reads it."""
    for option in (orjson.OPT_INDENT_2, None):
        data = orjson.dumps(records, option=option)
        try:
            assert list(elements(data)) == records
        except Unsplittable:
            assert option is not None and {} in records
            assert list(elements(data, split=False)) == records


def test_a_snapshot_laid_out_by_hand_loads_whole(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = _open(path)
    for n in range(3):
        store.add_work(WorkItem(work_item_id=f"w{n}", work_type="t", description="}\n  {"))
    store.compact()
    store.close()
    snapshot = path / "work_snapshot.json"
    # Indented as written, but the last two elements joined on one line by hand.
    written = snapshot.read_bytes()
    first, rest = written.split(b"\n  },\n  {", 1)
    snapshot.write_bytes(first + b"\n  },\n  {" + rest.replace(b"\n  },\n  {", b"\n  }, {"))
    assert orjson.loads(snapshot.read_bytes()) == orjson.loads(written)
    with pytest.raises(Unsplittable):
        list(elements(snapshot.read_bytes()))
    reopened = _open(path)
    assert [i.work_item_id for i in reopened.list_work()] == ["w0", "w1", "w2"]
    reopened.close()
