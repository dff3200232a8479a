"""Records read back from the snapshot files (``work_snapshot.json``,
``agents_snapshot.json``), which people may edit with ``jq``: read them an element at a
time, and check what the indexes and file names rely on before trusting them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from orchestrator.ids import check_id
from orchestrator.records import ALL_STATUSES, PRIORITIES, Agent, WorkItem
from orchestrator.store.state import check_key

_NUMBER = (int, float)

# An array of objects laid out as compaction (orjson) and jq write it: two-space
# indentation, so an element's braces, and only an element's, sit at line starts
# indented by two (deeper lines by more; JSON strings hold no raw newline).
_HEAD, _BETWEEN, _TAIL = b"[\n  {", b"\n  },\n  {", b"\n  }\n]"


class NotAnArray(Exception):
    """The file holds JSON, but not an array."""


class Unsplittable(Exception):
    """The file looked laid out one element per block, but is not: parse it whole."""


def elements(data: bytes, split: bool = True) -> Iterator[Any]:
    """The elements of the JSON array ``data``. Laid out one object per indented block,
    each is parsed on its own, so a large snapshot is never held parsed whole (a process
    loading 100,000 items peaks at a third of the memory); otherwise (or ``split``
    False) the array is parsed at once. Raises orjson.JSONDecodeError or NotAnArray;
    Unsplittable (before or after yielding) when the layout is not what it looked."""
    body = data.rstrip()
    if split and body.startswith(_HEAD) and body.endswith(_TAIL):
        inner = body[len(_HEAD) : -len(_TAIL)]
        start = 0
        while True:
            end = inner.find(_BETWEEN, start)
            try:
                yield orjson.loads(b"{%b}" % (inner[start:] if end < 0 else inner[start:end]))
            except orjson.JSONDecodeError:
                raise Unsplittable from None
            if end < 0:
                return
            start = end + len(_BETWEEN)
    parsed = orjson.loads(data)
    if not isinstance(parsed, list):
        raise NotAnArray
    yield from parsed


def checked_item(raw: object) -> WorkItem:
    """A work item from a snapshot file, which people may edit: check what the
    indexes and file names rely on."""
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    item = WorkItem.from_dict(raw)
    check_id(item.work_item_id, "work id")
    if item.priority not in PRIORITIES:
        raise ValueError(f"unknown priority {item.priority!r}")
    if item.status not in ALL_STATUSES:
        raise ValueError(f"unknown status {item.status!r}")
    if not isinstance(item.work_type, str) or not isinstance(item.description, str):
        raise TypeError("work_type and description must be strings")
    if item.team is not None and not isinstance(item.team, str):
        raise TypeError("team must be a string or null")
    for name in ("created_at", "updated_at", "attempts", "max_attempts", "progress"):
        if not isinstance(getattr(item, name), _NUMBER) or isinstance(getattr(item, name), bool):
            raise TypeError(f"{name} must be a number")
    for name in ("claimed_at", "completed_at", "lease_expires_at"):
        value = getattr(item, name)
        if value is not None and not isinstance(value, _NUMBER):
            raise TypeError(f"{name} must be a number or null")
    if item.agent_id is not None:
        check_id(item.agent_id, "agent id")
    check_key(item.key)
    if item.parents is not None and not (
        isinstance(item.parents, list) and all(isinstance(p, str) for p in item.parents)
    ):
        raise TypeError("parents must be a list of work ids or null")
    return item


def checked_agent(raw: object) -> Agent:
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    agent = Agent.from_dict(raw)
    check_id(agent.agent_id, "agent id")
    for name in ("registered_at", "last_heartbeat"):
        if not isinstance(getattr(agent, name), _NUMBER):
            raise TypeError(f"{name} must be a number")
    return agent
