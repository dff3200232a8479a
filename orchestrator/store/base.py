"""The store contract: the ``Store`` protocol every backend implements.

Every backend (the file journal, PostgreSQL) implements ``Store`` and passes the one
contract suite in ``tests/test_store_contract.py``. The records it stores live in
``orchestrator.records``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, overload

from orchestrator.records import ANY, Agent, ClaimFilter, WorkFilter, WorkItem, WorkStatus
from orchestrator.store.named import NamedRecords
from orchestrator.store.shared_docs import Change

T = TypeVar("T")


class Enqueued(Sequence[str]):
    """What ``add_many`` did with each item, in the order given.

    A sequence of work ids, so a caller that only wants ids uses it as one: the new
    item's id, or, when the item's key was already present in the store (or earlier
    in the same batch), the id of the item holding that key. ``new[i]`` tells which.
    (A plain class: a dataclass costs every one-shot CLI process its compile at import.)
    """

    __slots__ = ("ids", "new")

    def __init__(self, ids: tuple[str, ...], new: tuple[bool, ...]) -> None:
        self.ids = ids
        self.new = new

    def __repr__(self) -> str:
        return f"Enqueued(ids={self.ids!r}, new={self.new!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Enqueued):
            return self.ids == other.ids and self.new == other.new
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    @property
    def added(self) -> list[str]:
        """Ids of the items this call created."""
        return [work_id for work_id, new in zip(self.ids, self.new, strict=True) if new]

    @property
    def present(self) -> list[str]:
        """Ids of the items already holding the keys of the items not added."""
        return [work_id for work_id, new in zip(self.ids, self.new, strict=True) if not new]

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self.ids[index]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)


class Store(NamedRecords, Protocol):
    """The coordination store contract.

    ``agent_id=None`` on an item operation means an operator acting from the CLI
    without ``AGENT_ID``: the holder check is skipped, the state checks are not.
    """

    path: str  # where it lives, for messages (a DSN without its password)

    def register(self, agent: Agent) -> Agent: ...

    def heartbeat(self, agent_id: str) -> int:
        """Refresh the agent and extend the leases it holds; return how many."""
        ...

    def deregister(self, agent_id: str) -> Agent: ...

    def get_agent(self, agent_id: str) -> Agent: ...

    def list_agents(self) -> list[Agent]: ...

    def add_work(self, item: WorkItem) -> str:
        """Enqueue one item; return its id, or the present item's when its key is taken
        (``add_many`` tells the two apart)."""
        ...

    def add_many(self, items: Sequence[WorkItem]) -> Enqueued:
        """Enqueue several items at once (all or none), atomically with respect to keys:
        an item whose ``key`` is held by an item not yet archived is not added, and
        however many processes enqueue the same key at once, one item gets it. An id
        already in use is a Conflict, as is a malformed key an InvalidArgument."""
        ...

    def claim(
        self, agent_id: str, filters: ClaimFilter = ANY, lease_s: float | None = None
    ) -> WorkItem | None: ...

    def claim_id(
        self, agent_id: str, work_id: str, lease_s: float | None = None
    ) -> WorkItem | None:
        """Claim this item (one an agent chose, LLM-assisted); None when it is no longer
        pending (taken meanwhile), NotFound when there is no such item."""
        ...

    def claim_new(self, agent_id: str, item: WorkItem) -> WorkItem:
        """Create the item and claim it in one step; Conflict when its id or key is taken."""
        ...

    def reprioritize(self, work_id: str, priority: str) -> WorkItem:
        """Change a live item's priority (its place in the queue); Conflict when it has
        finished, NotFound when there is no such item."""
        ...

    def progress(
        self,
        work_id: str,
        percent: int,
        status: str = WorkStatus.IN_PROGRESS,
        agent_id: str | None = None,
    ) -> WorkItem: ...

    def complete(
        self,
        work_id: str,
        status: str = "success",
        points: int | None = None,
        result: Any = None,
        agent_id: str | None = None,
    ) -> WorkItem: ...

    def fail(
        self, work_id: str, error: str, agent_id: str | None = None, retry: bool = False
    ) -> WorkItem: ...

    def release(self, work_id: str, agent_id: str | None = None) -> WorkItem: ...

    def release_agent(self, agent_id: str) -> list[WorkItem]:
        """Return every item the (dead) agent holds to the queue, counting an attempt."""
        ...

    def cancel(self, work_id: str, reason: str | None = None) -> WorkItem:
        """Cancel an item that has not ended (a held one too: its agent stops at its next
        heartbeat); its open descendants are cancelled with it. Conflict when it ended."""
        ...

    def retry(self, work_id: str) -> WorkItem:
        """Put a dead, failed or cancelled item back (attempts reset): pending, or blocked
        while a parent is open; the descendants it cancelled wait for it again."""
        ...

    def complete_and_enqueue(
        self,
        work_id: str,
        follow_ups: Sequence[WorkItem],
        result: Any = None,
        agent_id: str | None = None,
    ) -> tuple[WorkItem, Enqueued]:
        """Complete a held item with success and enqueue ``follow_ups`` (whose parents
        may name it and each other) in one step: a refused completion enqueues nothing."""
        ...

    def get(self, work_id: str) -> WorkItem: ...

    def list_work(self, include_terminal: bool = True) -> list[WorkItem]: ...

    def sweep(self) -> list[WorkItem]:
        """Apply expired leases now; return the items that changed."""
        ...

    def compact(self) -> int:
        """Housekeeping; return how many finished items were archived."""
        ...

    def update_shared(
        self, names: Sequence[str], change: Change[T], ledger: dict[str, Any] | None = None
    ) -> T:
        """One atomic step over named shared documents (limits, budgets) plus an optional
        ledger entry: see ``store.shared_docs``."""
        ...

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Ledger entries (one per LLM call) with ``ts >= since``, oldest first."""
        ...

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Idle until work may be available, ``timeout`` passes or ``stop`` is set."""
        ...

    def close(self) -> None: ...


def claim_many(
    store: Store,
    agent_id: str,
    filters: ClaimFilter = ANY,
    count: int = 1,
    lease_s: float | None = None,
) -> list[WorkItem]:
    """Claim up to ``count`` pending items in queue order (fewer, or none, when fewer are
    pending), each held exactly as one ``claim`` would hold it.

    A backend that claims several per round trip (PostgreSQL) has its own ``claim_many``;
    any other store claims one: with the embedded store a claim costs no round trip, so
    holding more would only keep items from other agents."""
    native = getattr(store, "claim_many", None)
    if native is not None and count > 1:
        items: list[WorkItem] = native(agent_id, filters, count, lease_s)
        return items
    item = store.claim(agent_id, filters, lease_s)
    return [] if item is None else [item]


class WorkPage(NamedTuple):
    """One page of a listing, and how many items the whole listing holds."""

    items: list[WorkItem]
    total: int


def page_work(store: Store, filters: WorkFilter, offset: int, limit: int) -> WorkPage:
    """The items ``filters`` accepts, in list-work's order (``records.list_order``),
    from ``offset``, at most ``limit`` of them, and their count.

    A backend that pages in its own query (PostgreSQL) has its own ``page_work``; any
    other store lists everything and filters here (the file store lists from memory)."""
    native = getattr(store, "page_work", None)
    if native is not None:
        page: WorkPage = native(filters, offset, limit)
        return page
    items = store.list_work(include_terminal=filters.include_terminal)
    if filters.narrowed:
        items = [i for i in items if filters.accepts(i)]
    return WorkPage(items[offset : offset + limit], len(items))


# The HTTP API's polled summaries. As with page_work, a backend that aggregates in its
# own query (PostgreSQL: store/pg_summary.py) has its own method; others list here.


def work_counts(store: Store) -> Counter[str]:
    """How many items there are in each status."""
    native = getattr(store, "work_counts", None)
    if native is not None:
        counts: Counter[str] = native()
        return counts
    return Counter(str(item.status) for item in store.list_work(include_terminal=True))


def holdings(store: Store) -> dict[str, list[str]]:
    """The ids of the items each agent holds."""
    native = getattr(store, "holdings", None)
    if native is not None:
        held: dict[str, list[str]] = native()
        return held
    return holdings_of(store.list_work(include_terminal=False))


def holdings_of(items: Iterable[WorkItem]) -> dict[str, list[str]]:
    """``holdings`` of a listing already in hand."""
    found: dict[str, list[str]] = {}
    for item in items:
        if item.held and item.agent_id:
            found.setdefault(item.agent_id, []).append(item.work_item_id)
    return found


def finished_since(store: Store, start: float) -> list[tuple[float, str]]:
    """When and how each item that finished (completed, failed, dead) from ``start`` on
    did: its ``completed_at``, else the time it last changed."""
    native = getattr(store, "finished_since", None)
    if native is not None:
        done: list[tuple[float, str]] = native(start)
        return done
    return finished_of(store.list_work(include_terminal=True), start)


def finished_of(items: Iterable[WorkItem], start: float) -> list[tuple[float, str]]:
    """``finished_since`` of a listing already in hand."""
    found = []
    for item in items:
        if item.status in (WorkStatus.COMPLETED, WorkStatus.FAILED, WorkStatus.DEAD):
            done = item.completed_at or item.updated_at
            if done is not None and done >= start:
                found.append((done, str(item.status)))
    return found


def run_counts(store: Store, enqueued: Iterable[str]) -> Counter[str]:
    """How many of the items ``enqueued`` (a run's) and of the items that wait for them,
    directly or further down, there are in each status."""
    native = getattr(store, "run_counts", None)
    if native is not None:
        counts: Counter[str] = native(enqueued)
        return counts
    return run_counts_of(store.list_work(include_terminal=True), enqueued)


def run_counts_of(items: Iterable[WorkItem], enqueued: Iterable[str]) -> Counter[str]:
    """``run_counts`` of a listing already in hand."""
    mine = set(enqueued)
    counts: Counter[str] = Counter()
    for item in sorted(items, key=lambda i: i.created_at):  # parents are made first
        if item.work_item_id in mine or (item.parents and not mine.isdisjoint(item.parents)):
            mine.add(item.work_item_id)
            counts[str(item.status)] += 1
    return counts


def children_of(store: Store, work_id: str) -> list[WorkItem]:
    """The items that name ``work_id`` among their parents."""
    native = getattr(store, "children_of", None)
    if native is not None:
        children: list[WorkItem] = native(work_id)
        return children
    return [i for i in store.list_work() if work_id in (i.parents or ())]
