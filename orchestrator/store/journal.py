"""Journal records.

A record is one line, valid JSON, carrying a CRC-32 of its event body::

    {"c":2596996162,"e":{"op":"claim","ts":1764021349.1,"items":[{...}]}}

so a torn write (no newline) or flipped bits (checksum mismatch) are told apart from
good records without parsing the body twice.

An event's ``items`` hold work items in one of two forms. An item new to the store (or
one whose previous version the writer did not know) is written whole; every later
version carries only ``work_item_id`` and the fields that changed (``item_record``).
A whole version always has ``created_at``, which never changes once an item exists,
so a record without it is a change to apply to the version before (``State``). Every
process reads every record, so records a few times smaller are a few times cheaper to
replay. Journals written before this carry whole versions only, which read the same.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from orchestrator.records import WorkItem

_PREFIX = b'{"c":'
_BODY = b',"e":'


def encode(event: dict[str, Any]) -> bytes:
    body = orjson.dumps(event)
    return b'{"c":%d,"e":%b}\n' % (zlib.crc32(body), body)


_MISSING = object()


def item_record(old: WorkItem | None, new: WorkItem) -> WorkItem | dict[str, Any]:
    """How ``new`` is written when ``old`` is the version every reader holds: whole if
    there is none (or it is another item of the same id), else the changed fields."""
    if old is None or old.created_at != new.created_at:
        return new
    # Identity, not equality: versions are copies (``evolve``) sharing unchanged values,
    # and a field written again although equal costs a few bytes, never correctness.
    before, after = old.__dict__, new.__dict__
    names = list(after)
    if names == list(before):  # the usual case: a copy made by ``evolve``, fields aligned
        record = {
            k: v
            for k, v, was in zip(names, after.values(), before.values(), strict=True)
            if was is not v
        }
    else:
        record = {k: v for k, v in after.items() if before.get(k, _MISSING) is not v}
    record.pop("created_at", None)  # equal (checked above); its presence marks a whole item
    record["work_item_id"] = new.work_item_id
    return record


def is_whole(record: dict[str, Any]) -> bool:
    """Whether an item record of an event is a whole version (else changed fields)."""
    return "created_at" in record


def item_version(record: dict[str, Any], known: WorkItem | None) -> WorkItem | None:
    """The version of an item a record describes: the record when whole, else ``known``
    with the changed fields; None for a change to an item the reader does not hold
    (archived by a compaction whose snapshot it read)."""
    if is_whole(record):
        # Laid over a blank item's attributes rather than taken as they are: the copy
        # keeps the compact layout CPython shares between instances of a class (a
        # fifth of the memory per item, which every process holds for every item).
        record = _BLANK.__dict__ | record
    elif known is None:
        return None
    else:
        record = known.__dict__ | record
    # Journal records are checksummed and written by this code: skip __init__.
    item = object.__new__(WorkItem)
    item.__dict__ = record
    return item


_BLANK = WorkItem(work_item_id="", work_type="", description="")


def decode(line: bytes) -> dict[str, Any] | None:
    """The event of one newline-terminated line, or None if the line is corrupt."""
    if not line.startswith(_PREFIX) or not line.endswith(b"}\n"):
        return None
    split = line.find(_BODY, len(_PREFIX))
    if split < 0:
        return None
    body = line[split + len(_BODY) : -2]
    try:
        crc = int(line[len(_PREFIX) : split])
    except ValueError:
        return None
    if zlib.crc32(body) != crc:
        return None
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
