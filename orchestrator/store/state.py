"""The rules of every transition of the file store's items and agents.

The functions here check an operation against the state (``sql_state.SqlState``) and
return the new versions of the records it changes, without applying them; the backend
makes them durable first (its journal) and then applies them with ``put_item``/
``put_agent``, the same path a journal replay takes, so a process that wrote a change
and one that read it agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Conflict, InvalidArgument, NotFound
from orchestrator.ids import check_id
from orchestrator.records import (
    AGENT_STATUSES,
    COMPLETE_STATUSES,
    HELD_STATUSES,
    PRIORITIES,
    STORY_POINTS_RANGE,
    Agent,
    WorkItem,
    WorkStatus,
    out_of_attempts,
    with_id,
)
from orchestrator.store import pipeline
from orchestrator.store.base import Enqueued

if TYPE_CHECKING:
    from orchestrator.store.sql_state import SqlState

# -- transitions ---------------------------------------------------------------------


def check_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise InvalidArgument(f"unknown priority {priority!r}: use one of {', '.join(PRIORITIES)}")
    return priority


def check_percent(percent: int) -> int:
    if not 0 <= percent <= 100:
        raise InvalidArgument(f"progress {percent} is out of range: use 0-100")
    return percent


def check_points(points: int | None) -> int | None:
    low, high = STORY_POINTS_RANGE
    if points is not None and not low <= points <= high:
        raise InvalidArgument(f"story points {points} out of range: use {low}-{high}")
    return points


def check_agent(agent: Agent) -> Agent:
    check_id(agent.agent_id, "agent id")
    if not 0 <= agent.capacity <= 100:
        raise InvalidArgument(f"capacity {agent.capacity} out of range: use 0-100")
    if agent.status not in AGENT_STATUSES:
        raise InvalidArgument(
            f"unknown agent status {agent.status!r}: use {' or '.join(AGENT_STATUSES)}"
        )
    return agent


def check_progress_status(status: str) -> str:
    if status not in (WorkStatus.IN_PROGRESS, WorkStatus.BLOCKED):
        raise InvalidArgument(f"unknown progress status {status!r}: use in_progress or blocked")
    return status


def check_complete_status(status: str) -> str:
    if status not in COMPLETE_STATUSES:
        raise InvalidArgument(
            f"unknown completion status {status!r}: use one of {', '.join(COMPLETE_STATUSES)}"
        )
    return status


KEY_MAX = 512


def check_key(key: object) -> str | None:
    """A work key: None, or 1-512 characters without control characters (keys may
    name files, so '/', spaces and the like are fine)."""
    if key is None:
        return None
    if not isinstance(key, str) or not 0 < len(key) <= KEY_MAX or not key.isprintable():
        raise InvalidArgument(f"invalid work key {key!r}: use 1-{KEY_MAX} printable characters")
    return key


def prepared(item: WorkItem) -> WorkItem:
    """A new item checked before it is stored: an id (generated when empty) that is
    safe as a file name, a known priority, a work type, a well-formed key."""
    item = pipeline.check_refs(with_id(item))
    check_id(item.work_item_id, "work id")
    check_priority(item.priority)
    check_key(item.key)
    if not item.work_type:
        raise InvalidArgument("work_type must not be empty")
    return item


def new_item(item: WorkItem, now: float, max_attempts: int) -> WorkItem:
    return item.evolve(
        status=WorkStatus.PENDING,
        agent_id=None,
        created_at=item.created_at or now,
        updated_at=now,
        max_attempts=item.max_attempts if item.max_attempts > 0 else max_attempts,
    )


def added(
    state: SqlState,
    items: Sequence[WorkItem],
    now: float,
    max_attempts: int,
    seen: Sequence[WorkItem] = (),
) -> tuple[list[WorkItem], Enqueued]:
    """Plan an enqueue of prepared items: the new records to store, and per item its
    id or the id of the item already holding its key (earlier in this batch too).
    ``seen``: records of the same operation the new items' parents are read from."""
    new: list[WorkItem] = []
    ids: list[str] = []
    flags: list[bool] = []
    batch: dict[str, str] = {}
    for item in items:
        if item.key is not None:
            present = state.keyed(item.key)
            taken = present.work_item_id if present is not None else batch.get(item.key)
            if taken is not None:
                ids.append(taken)
                flags.append(False)
                continue
            batch[item.key] = item.work_item_id
        if item.work_item_id in state.items:
            raise Conflict(f"work item {item.work_item_id} already exists")
        new.append(new_item(item, now, max_attempts))
        ids.append(item.work_item_id)
        flags.append(True)
    return pipeline.linked(state, new, now, seen), Enqueued(tuple(ids), tuple(flags))


def claimed(item: WorkItem, agent_id: str, now: float, lease_s: float) -> WorkItem:
    return item.evolve(
        status=WorkStatus.CLAIMED,
        agent_id=agent_id,
        progress=0,
        claimed_at=now,
        updated_at=now,
        lease_expires_at=now + lease_s,
    )


def held_item(state: SqlState, work_id: str, agent_id: str | None) -> WorkItem:
    """The item, if it is held (by ``agent_id`` when given); else NotFound/Conflict."""
    check_id(work_id, "work id")
    if agent_id is not None:
        check_id(agent_id, "agent id")
    item = state.items.get(work_id)
    if item is None:
        raise NotFound(f"work item {work_id} not found")
    return check_holder(item, agent_id)


def check_holder(item: WorkItem, agent_id: str | None) -> WorkItem:
    """The item if it is held (by ``agent_id`` when given), else Conflict."""
    if item.status not in HELD_STATUSES:
        raise Conflict(f"work item {item.work_item_id} is {item.status}, not claimed")
    if item.agent_id is None:
        raise Conflict(f"work item {item.work_item_id} is blocked on its parents, not claimed")
    if agent_id is not None and item.agent_id != agent_id:
        raise Conflict(f"work item {item.work_item_id} is held by {item.agent_id}, not {agent_id}")
    return item


def progressed(item: WorkItem, percent: int, status: str, now: float, lease_s: float) -> WorkItem:
    return item.evolve(
        progress=check_percent(percent),
        status=check_progress_status(status),
        updated_at=now,
        lease_expires_at=now + lease_s,
    )


def completed(item: WorkItem, status: str, points: int | None, result: Any, now: float) -> WorkItem:
    check_complete_status(status)
    return item.evolve(
        status=WorkStatus.COMPLETED if status == "success" else WorkStatus.FAILED,
        completion_status=status,
        story_points=check_points(points),
        result=result,
        progress=100 if status == "success" else item.progress,
        updated_at=now,
        completed_at=now,
        lease_expires_at=None,
    )


def failed(item: WorkItem, error: str, now: float) -> WorkItem:
    return item.evolve(
        status=WorkStatus.FAILED,
        completion_status="failed",
        error=error,
        updated_at=now,
        completed_at=now,
        lease_expires_at=None,
    )


def returned(item: WorkItem, now: float, error: str | None, count_attempt: bool) -> WorkItem:
    """Back to the queue; an attempt is counted for a crash or an expired lease,
    and an item out of attempts is dead instead."""
    attempts = item.attempts + 1 if count_attempt else item.attempts
    if count_attempt and out_of_attempts(attempts, item.max_attempts):
        return item.evolve(
            status=WorkStatus.DEAD,
            attempts=attempts,
            error=f"{error}; gave up after {attempts} attempts" if error else None,
            updated_at=now,
            completed_at=now,
            lease_expires_at=None,
        )
    return item.evolve(
        status=WorkStatus.PENDING,
        agent_id=None,
        progress=0,
        attempts=attempts,
        error=error if error is not None else item.error,
        claimed_at=None,
        updated_at=now,
        lease_expires_at=None,
    )


def extended(items: Iterable[WorkItem], now: float, lease_s: float) -> list[WorkItem]:
    return [i.evolve(updated_at=now, lease_expires_at=now + lease_s) for i in items]
