"""The rules of dependencies between work items, shared by both backends.

An item may name parents (ids or keys) when it is enqueued. The store resolves them to
ids, refuses unknown ones and cycles, and starts the item

- ``pending`` when every parent is completed,
- ``blocked`` with no holder while some parent is still open,
- ``cancelled`` when a parent already ended dead, failed or cancelled.

From then on each change of a parent settles its children in the same operation (the
file store: ``settle`` below, in the same journal record; PostgreSQL: the trigger of
migration 0005): the last parent to complete makes a child ``pending``; a parent that
gives up cancels its open children, each with the reason (``parent work_… is dead``),
and so on down; a retried parent revives the children it had cancelled. Items in a
cycle could never run, and a cycle can only be made inside one enqueue (a stored
item's parents never change), so checking each batch is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from orchestrator.errors import Conflict, InvalidArgument
from orchestrator.records import GAVE_UP_STATUSES, WorkItem, WorkStatus

if TYPE_CHECKING:
    from orchestrator.store.sql_state import SqlState

PARENTS_MAX = 1000


def gone_reason(parent_id: str, status: str) -> str:
    """Why a child was cancelled; ``revives`` recognises it by this prefix."""
    return f"parent {parent_id} is {status}"


def _revives(child: WorkItem, parent_id: str) -> bool:
    return (
        child.status == WorkStatus.CANCELLED
        and child.error is not None
        and child.error.startswith(f"parent {parent_id} is ")
    )


def check_refs(item: WorkItem) -> WorkItem:
    """The item with its parent references checked and de-duplicated (order kept)."""
    refs = item.parents
    if refs is None:
        return item
    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
        raise InvalidArgument(
            f"parents of {item.work_item_id or 'a new item'} must be a list of work ids or keys"
        )
    if len(refs) > PARENTS_MAX:
        raise InvalidArgument(f"{len(refs)} parents: at most {PARENTS_MAX} per item")
    unique = list(dict.fromkeys(refs))
    return item.evolve(parents=unique or None)


def resolve(items: Sequence[WorkItem], lookup: Callable[[str], str | None]) -> list[WorkItem]:
    """The new items of one enqueue with their parent references (ids or keys of stored
    items or of items in the same batch) replaced by ids, in the order given. Unknown
    parents and cycles are InvalidArgument, naming the ids."""
    if not any(item.parents for item in items):
        return list(items)
    ids = {item.work_item_id for item in items}
    keys = {item.key: item.work_item_id for item in items if item.key is not None}
    out: list[WorkItem] = []
    unknown: list[str] = []
    for item in items:
        if not item.parents:
            out.append(item)
            continue
        found: list[str] = []
        for ref in item.parents:
            parent = ref if ref in ids else keys.get(ref) or lookup(ref)
            if parent is None:
                unknown.append(f"{ref} (parent of {_name(item)})")
            elif parent == item.work_item_id:
                raise InvalidArgument(f"work item {_name(item)} cannot depend on itself")
            elif parent not in found:
                found.append(parent)
        out.append(item.evolve(parents=found))
    if unknown:
        raise InvalidArgument(
            f"unknown parent work: {', '.join(unknown)}; enqueue the parents first"
        )
    topological(out)
    return out


def topological(items: Sequence[WorkItem]) -> list[WorkItem]:
    """The batch ordered parents first; a cycle among them is InvalidArgument."""
    by_id = {item.work_item_id: item for item in items}
    order: list[WorkItem] = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    for start in by_id:
        if state.get(start):
            continue
        path: list[str] = [start]
        stack: list[Iterator[str]] = [iter(by_id[start].parents or ())]
        state[start] = 1
        while stack:
            parent = next(stack[-1], None)
            if parent is None:
                done = path.pop()
                stack.pop()
                state[done] = 2
                order.append(by_id[done])
                continue
            if parent not in by_id or state.get(parent) == 2:
                continue
            if state.get(parent) == 1:
                cycle = [_name(by_id[w]) for w in [*path[path.index(parent) :], parent]]
                raise InvalidArgument(f"dependency cycle: {' -> '.join(cycle)}")
            state[parent] = 1
            path.append(parent)
            stack.append(iter(by_id[parent].parents or ()))
    return order


def _name(item: WorkItem) -> str:
    """How messages name an item: its key, which people chose, else its id."""
    return item.work_item_id if item.key is None else f"{item.key!r} ({item.work_item_id})"


def started(item: WorkItem, status_of: Callable[[str], str], now: float) -> WorkItem:
    """A new item's first status from its parents' (``status_of`` sees the batch)."""
    if not item.parents:
        return item
    open_parent = False
    for parent in item.parents:
        status = status_of(parent)
        if status in GAVE_UP_STATUSES:
            return cancelled(item, gone_reason(parent, status), now)
        open_parent = open_parent or status != WorkStatus.COMPLETED
    return item.evolve(status=WorkStatus.BLOCKED) if open_parent else item


def cancelled(item: WorkItem, reason: str, now: float) -> WorkItem:
    """Cancelled: terminal. A holder is kept on the record (its agent's next heartbeat
    finds the item no longer held and stops the work; its completion is refused)."""
    return item.evolve(
        status=WorkStatus.CANCELLED,
        error=reason,
        updated_at=now,
        completed_at=now,
        lease_expires_at=None,
    )


def cancellable(item: WorkItem) -> WorkItem:
    if item.terminal:
        raise Conflict(f"work item {item.work_item_id} is already {item.status}")
    return item


def retried(item: WorkItem, status_of: Callable[[str], str], now: float) -> WorkItem:
    """Back to the queue from dead, failed or cancelled, attempts reset: ``pending``, or
    ``blocked`` while a parent is open. A parent that gave up must be retried first."""
    if item.status not in GAVE_UP_STATUSES:
        raise Conflict(
            f"work item {item.work_item_id} is {item.status}: only dead, failed or"
            " cancelled items can be retried"
        )
    waiting = False
    for parent in item.parents or ():
        status = status_of(parent)
        if status in GAVE_UP_STATUSES:
            raise Conflict(
                f"parent {parent} of {item.work_item_id} is {status}: retry the parent first"
            )
        waiting = waiting or status != WorkStatus.COMPLETED
    return item.evolve(
        status=WorkStatus.BLOCKED if waiting else WorkStatus.PENDING,
        agent_id=None,
        progress=0,
        attempts=0,
        error=None,
        result=None,
        completion_status=None,
        claimed_at=None,
        completed_at=None,
        lease_expires_at=None,
        updated_at=now,
    )


def settle(state: SqlState, changed: Sequence[WorkItem], now: float) -> list[WorkItem]:
    """The children (and their descendants) that ``changed`` moves, as new versions:
    called with the records of an operation before they are applied, so ``state``
    still holds their previous versions."""
    children = state.children
    if not children:
        return []
    queue = [item for item in changed if item.work_item_id in children]
    if not queue:
        return []
    newer = {item.work_item_id: item for item in changed}
    out: dict[str, WorkItem] = {}

    def current(work_id: str) -> WorkItem | None:
        return out.get(work_id) or newer.get(work_id) or state.items.get(work_id)

    while queue:
        parent = queue.pop()
        parent_id = parent.work_item_id
        before = state.items.get(parent_id)
        if parent.status == WorkStatus.COMPLETED:
            action = "unblock"
        elif parent.status in GAVE_UP_STATUSES:
            action = "cancel"
        elif before is not None and before.status in GAVE_UP_STATUSES:
            action = "revive"  # the parent was retried
        else:
            continue
        for child_id in children.get(parent_id, ()):
            child = current(child_id)
            if child is None:
                continue
            new: WorkItem | None = None
            if action == "unblock" and child.waiting:
                # A parent no longer in the state was archived: it ended, and completed (one
                # that gave up would have cancelled this child).
                ready = all(
                    (p := current(pid)) is None or p.status == WorkStatus.COMPLETED
                    for pid in child.parents or ()
                )
                if ready:
                    new = child.evolve(status=WorkStatus.PENDING, updated_at=now)
            elif action == "cancel" and (child.waiting or child.status == WorkStatus.PENDING):
                new = cancelled(child, gone_reason(parent_id, parent.status), now)
            elif action == "revive" and _revives(child, parent_id):
                gone = next(
                    (
                        p
                        for pid in child.parents or ()
                        if (p := current(pid)) is not None and p.status in GAVE_UP_STATUSES
                    ),
                    None,
                )
                if gone is not None:  # another parent gave up too: that one is the reason now
                    new = child.evolve(error=gone_reason(gone.work_item_id, gone.status))
                    out[child_id] = new
                    continue
                new = child.evolve(
                    status=WorkStatus.BLOCKED,
                    agent_id=None,
                    error=None,
                    completed_at=None,
                    updated_at=now,
                )
            if new is not None:
                out[child_id] = new
                queue.append(new)
    return list(out.values())


def linked(
    state: SqlState, new: list[WorkItem], now: float, seen: Sequence[WorkItem] = ()
) -> list[WorkItem]:
    """The file store's enqueue: parents resolved against the state and the batch, and
    each new item's first status (in the order given); ``seen`` are newer versions of
    stored items (a parent completing in the same operation)."""
    if not any(item.parents for item in new):
        return new

    def lookup(ref: str) -> str | None:
        return ref if ref in state.items else state.keys.get(ref)

    resolved = resolve(new, lookup)
    first: dict[str, WorkItem] = {item.work_item_id: item for item in seen}

    def status_of(work_id: str) -> str:
        item = first.get(work_id) or state.items[work_id]
        return item.status

    for item in topological(resolved):
        first[item.work_item_id] = started(item, status_of, now)
    return [first[item.work_item_id] for item in resolved]


def without_parents(item: WorkItem) -> WorkItem:
    """``claim_new`` creates an item already held: it cannot wait for parents."""
    if item.parents:
        raise InvalidArgument("an item created claimed cannot have parents: enqueue it instead")
    return item
