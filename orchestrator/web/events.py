"""Server-Sent Events of store changes, read from the store's operation log.

Each client has its own reader at its own position (one ``fstat`` per poll on the file
store; nothing is listed or compared), so a stream costs the same with 100 items or
100,000, and resuming with ``Last-Event-ID`` is reading the log from that position. An
event's id is the position of its log record plus the item's index in that record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import orjson

from orchestrator.store.changes import Change, ChangeReader

PING_S = 15.0
_DESCRIPTION = 200  # characters of a description carried in an event

_BY_STATUS = {
    "claimed": "claimed",
    "in_progress": "progress",
    "completed": "completed",
    "failed": "failed",
    "dead": "dead",
    "cancelled": "cancelled",
}


def kind(op: str, status: str | None) -> str:
    """The event type of an item's new version written by operation ``op``."""
    if op == "progress" and status not in ("completed", "pending"):
        return "progress"  # blocked by its agent too
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if op in ("add", "claim_new"):
        return "enqueued"
    if op == "retry":
        return "retried"
    if op in ("release", "release_agent", "expire", "fail", "deregister"):
        return "requeued"
    return "updated"  # blocked/pending again after a parent moved, reprioritised, …


def events_of(change: Change) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, type, data) for each thing ``change`` did."""
    index = 0
    # A heartbeat only extends leases: nothing a watcher needs, many times a minute.
    for item in change.items if change.op != "heartbeat" else ():
        status = item.get("status")
        description = item.get("description")
        event_type = kind(change.op, status)
        data: dict[str, Any] = {
            "type": event_type,
            "ts": change.ts,
            "op": change.op,
            "work_item_id": item.get("work_item_id"),
            "status": status,
            "agent_id": item.get("agent_id"),
            "work_type": item.get("work_type"),
            "priority": item.get("priority"),
            "progress": item.get("progress"),
            "description": description[:_DESCRIPTION] if isinstance(description, str) else None,
            "error": item.get("error"),
        }
        yield f"{change.pos}.{index}", event_type, data
        index += 1
    if change.op in ("register", "deregister"):
        for agent in change.agents:
            data = {"type": "agent_up", "ts": change.ts, "agent_id": agent.get("agent_id")}
            data |= {"team": agent.get("team"), "host": agent.get("host")}
            yield f"{change.pos}.{index}", "agent_up", data
            index += 1
        for agent_id in change.gone:
            data = {"type": "agent_down", "ts": change.ts, "agent_id": agent_id}
            yield f"{change.pos}.{index}", "agent_down", data
            index += 1


def frame(event_id: str | None, event_type: str, data: dict[str, Any]) -> bytes:
    """One event; without an ``id`` line when ``event_id`` is None (the client's
    Last-Event-ID then stays as it was)."""
    head = b"" if event_id is None else b"id: %s\n" % event_id.encode()
    return head + b"event: %s\ndata: %s\n\n" % (event_type.encode(), orjson.dumps(data))


def gap_frame(last_event_id: str | None) -> bytes:
    """Tells a client that changes after its last event may be missing (the log no
    longer holds them, or never had its position): it must re-read what it shows. No
    ``id``: it is no position in the log."""
    data = {"type": "gap", "ts": time.time(), "last_event_id": last_event_id}
    return frame(None, "gap", data)


def split_id(last_event_id: str) -> tuple[str, int] | None:
    """A Last-Event-ID as (log position, index of the last item seen in its record)."""
    pos, _, index = last_event_id.strip().rpartition(".")
    if not pos or not index.isdigit():
        return None
    return pos, int(index)


async def stream(
    open_reader: Callable[[], ChangeReader],
    last_event_id: str | None,
    stopping: Callable[[], bool],
    disconnected: Callable[[], Any],
) -> AsyncIterator[bytes]:
    """The event stream of one client, from ``last_event_id`` or from now."""
    reader = await anyio.to_thread.run_sync(open_reader)
    try:
        skip_pos, skip_index = "", -1
        resume = split_id(last_event_id) if last_event_id else None
        if resume is not None:
            await anyio.to_thread.run_sync(reader.seek, resume[0])
            if not reader.gap:
                skip_pos, skip_index = resume
        else:
            await anyio.to_thread.run_sync(reader.seek_end)
            reader.gap = bool(last_event_id)  # not an id at all
        yield b"retry: 1000\n\n"
        last_sent = time.monotonic()
        last_id = last_event_id
        while True:
            out = []
            changes = await anyio.to_thread.run_sync(reader.poll)
            if reader.gap:  # at the seek, or in this poll before what it returned
                reader.gap = False
                out.append(gap_frame(last_id))
            for change in changes:
                for event_id, event_type, data in events_of(change):
                    if change.pos == skip_pos and int(event_id.rpartition(".")[2]) <= skip_index:
                        continue  # seen before the client reconnected
                    out.append(frame(event_id, event_type, data))
                    last_id = event_id
            if changes:
                skip_pos = ""
            if out:
                yield b"".join(out)
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > PING_S:
                yield b": ping\n\n"
                last_sent = time.monotonic()
            if stopping() or await disconnected():
                return
            await anyio.sleep(reader.poll_s)
    finally:
        reader.close()
