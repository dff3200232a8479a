"""What the HTTP API answers, free of the web framework: each function reads or changes
the swarm through the same code the CLI uses and returns plain JSON-ready data.

One store serves the whole server, behind a lock (requests run in a thread pool; a
store object is not shared between threads unguarded).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator import runstate
from orchestrator.errors import InvalidArgument, NotFound
from orchestrator.locations import without_password
from orchestrator.records import WorkFilter, WorkItem, WorkStatus
from orchestrator.store.base import (
    children_of,
    finished_of,
    finished_since,
    holdings,
    holdings_of,
    page_work,
    work_counts,
)
from orchestrator.web.listing import Listing

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.store.base import Store
    from orchestrator.telemetry.health import HealthReport

T = TypeVar("T")

MAX_LIMIT = 1000
MAX_SPANS = 500
_STATUSES = tuple(str(s) for s in WorkStatus)


class Sources:
    """The swarm as the server sees it: the CLI's context (swarm.toml, store target,
    agents folder, telemetry settings) and one store opened on first need."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._listing = Listing()
        self.stopping = threading.Event()  # set when the server stops: streams end

    def _open(self, create: bool) -> Store | None:
        if self._store is None:
            if create:
                from orchestrator.wiring import open_store

                self._store = open_store(self.context.store_target, self.context.store_settings)
            else:
                self._store = self.context.observed_store()
        return self._store

    def read(self, use: Callable[[Store | None], T]) -> T:
        """``use`` with the store, or None when none was ever created here."""
        with self._lock:
            return use(self._open(create=False))

    def write(self, use: Callable[[Store], T]) -> T:
        with self._lock:
            store = self._open(create=True)
            assert store is not None
            return use(store)

    def close(self) -> None:
        with self._lock:
            self._listing.close()
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- work ------------------------------------------------------------------------

    def work(self, filters: WorkFilter, offset: int, limit: int) -> tuple[list[WorkItem], int]:
        """A page of the items in list-work's order that ``filters`` accepts, and how
        many there are in all: from the listing that follows the store's log, or else
        from the store's own page (PostgreSQL pages in SQL)."""
        with self._lock:
            store = self._open(create=False)
            if store is None:
                return [], 0
            listing = self._listing
            if not listing.refresh(store):
                return page_work(store, filters, offset, limit)
            terminal = filters.include_terminal
            if not filters.narrowed:
                return listing.page(terminal, offset, limit), listing.total(terminal)
            chosen = [i for i in listing.ordered(terminal) if filters.accepts(i)]
        return chosen[offset : offset + limit], len(chosen)

    def summary(
        self,
        of_listing: Callable[[Listing], T],
        of_store: Callable[[Store], T],
        empty: T,
    ) -> T:
        """A summary of the work (counts, holdings, …) from the listing where it follows
        the store (held in memory), else from the store (which aggregates in its own
        query where it can: ``store.base``'s summaries); ``empty`` without a store."""
        with self._lock:
            store = self._open(create=False)
            if store is None:
                return empty
            if self._listing.refresh(store):
                return of_listing(self._listing)
            return of_store(store)


def _values(raw: Iterable[str]) -> set[str]:
    return {part.strip() for value in raw for part in value.split(",") if part.strip()}


def list_work(
    sources: Sources,
    *,
    status: Iterable[str] = (),
    work_type: Iterable[str] = (),
    team: Iterable[str] = (),
    priority: Iterable[str] = (),
    include_all: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit {limit} is out of range: use 1-{MAX_LIMIT}")
    if offset < 0:
        raise InvalidArgument(f"offset {offset} is out of range: use 0 or more")
    statuses, types, teams, priorities = (
        _values(status),
        _values(work_type),
        _values(team),
        _values(priority),
    )
    for value in sorted(statuses):
        if value not in _STATUSES:
            raise InvalidArgument(f"unknown status {value!r}: use one of {', '.join(_STATUSES)}")
    filters = WorkFilter(
        frozenset(statuses) or None,
        frozenset(types) or None,
        frozenset(teams) or None,
        frozenset(priorities) or None,
        include_all,
    )
    page, total = sources.work(filters, offset, limit)
    # Items as they are: orjson writes dataclasses ~10x faster than asdict copies them.
    return {"items": page, "total": total, "limit": limit, "offset": offset}


def _brief(item: WorkItem) -> dict[str, Any]:
    return {
        "work_item_id": item.work_item_id,
        "work_type": item.work_type,
        "description": item.description,
        "status": item.status,
    }


def item_detail(sources: Sources, work_id: str) -> dict[str, Any]:
    def use(store: Store | None) -> tuple[WorkItem, list[WorkItem], list[WorkItem]]:
        if store is None:
            raise NotFound(f"work item {work_id} not found")
        item = store.get(work_id)
        parents = []
        for parent_id in item.parents or ():
            try:
                parents.append(store.get(parent_id))
            except NotFound:
                continue  # archived
        children = children_of(store, work_id)
        return item, parents, children

    item, parents, children = sources.read(use)
    spans = item_spans(sources, item)
    attempts = [
        {
            "span": s.get("name"),
            "agent_id": (s.get("attributes") or {}).get("swarm.agent.id"),
            "start": s.get("start_unix_nano", 0) / 1e9,
            "end": s.get("end_unix_nano", 0) / 1e9,
            "status": s.get("status"),
        }
        for s in spans
        if s.get("name") in ("swarm.claim", "swarm.claim_new", "swarm.claim_id")
    ]
    return {
        "item": item.to_dict(),
        "parents": [_brief(p) for p in parents],
        "children": [_brief(c) for c in children],
        "attempts": attempts,
        "spans": spans,
    }


def item_spans(sources: Sources, item: WorkItem) -> list[dict[str, Any]]:
    """The spans of the item's trace, or naming the item, oldest first."""
    from orchestrator.telemetry.reader import iter_spans

    trace_id = None
    parent = (item.trace_context or {}).get("traceparent", "")
    if parent.count("-") == 3:
        trace_id = parent.split("-")[1]
    since = int((item.created_at - 60) * 1e9) if item.created_at else None
    found = []
    for span in iter_spans(sources.context.telemetry.spans_file, since_ns=since):
        attributes = span.get("attributes") or {}
        if (trace_id and span.get("trace_id") == trace_id) or attributes.get(
            "swarm.work.id"
        ) == item.work_item_id:
            found.append(span)
            if len(found) >= MAX_SPANS:
                break
    found.sort(key=lambda s: s.get("start_unix_nano", 0))
    return found


def enqueue(sources: Sources, body: Any) -> tuple[WorkItem, bool]:
    """``swarm add``: the same checks, the same store call."""
    from orchestrator.item_input import new_item, parents_of

    if not isinstance(body, dict):
        raise InvalidArgument('the body must be a JSON object: {"work_type", "description"}')
    known = {"work_type", "description", "priority", "team", "payload", "key", "after"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidArgument(
            f"unknown field(s) {', '.join(unknown)}: use {', '.join(sorted(known))}"
        )
    # Only the JSON types here: the values meet the CLI's checks (and messages) below.
    work_type, description = body.get("work_type"), body.get("description")
    for name, value in (("work_type", work_type), ("description", description)):
        if not isinstance(value, str):
            raise InvalidArgument(f"{name} is required: a string")
    priority = body.get("priority", "medium")
    team, key, after = body.get("team"), body.get("key"), body.get("after")
    for name, value in (("priority", priority), ("team", team), ("key", key)):
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"{name} must be a string")
    if after is not None and (
        not isinstance(after, list) or not all(isinstance(a, str) for a in after)
    ):
        raise InvalidArgument("after must be a list of work ids or keys")
    item = new_item(
        str(work_type),
        str(description),
        str(priority),
        team,
        key=key,
        parents=parents_of(after),
        parsed_payload=body.get("payload"),
    )

    def use(store: Store) -> WorkItem:
        return store.get(store.add_work(item))

    stored = sources.write(use)
    return stored, stored.work_item_id == item.work_item_id


def cancel(sources: Sources, work_id: str, reason: str | None) -> WorkItem:
    if reason is not None and not isinstance(reason, str):
        raise InvalidArgument("reason must be a string")
    return sources.write(lambda store: store.cancel(work_id, reason))


def retry(sources: Sources, work_id: str) -> WorkItem:
    return sources.write(lambda store: store.retry(work_id))


# -- agents and groups --------------------------------------------------------------------


def _supervisor(sources: Sources) -> tuple[dict[str, Any] | None, bool]:
    state = runstate.read(sources.context.agents_dir)
    return state, state is not None and runstate.is_alive(state)


def agents(sources: Sources) -> dict[str, Any]:
    state, alive = _supervisor(sources)

    # As agent-status shows them: who holds what.
    holding: dict[str, list[str]] = sources.summary(
        lambda listing: holdings_of(listing.snapshot()), holdings, {}
    )

    def use(store: Store | None) -> list[dict[str, Any]]:
        if store is None:
            return []
        return [a.to_dict() | {"holding": holding.get(a.agent_id, [])} for a in store.list_agents()]

    supervisor = None
    if state is not None:
        keys = ("pid", "host", "status", "started_at", "updated_at", "throughput_per_s")
        supervisor = {k: state.get(k) for k in keys} | {
            "alive": alive,
            "recent_failures": state.get("recent_failures", []),
        }
    return {
        "supervisor": supervisor,
        "agents": list(state.get("agents", [])) if state and alive else [],
        "registered": sources.read(use),
    }


def groups(sources: Sources) -> dict[str, Any]:
    state, alive = _supervisor(sources)
    rows = (state or {}).get("groups", {}) if alive else {}
    return {
        "groups": [{"name": name} | dict(group) for name, group in rows.items()],
        "supervisor_alive": alive,
    }


def group_action(sources: Sources, name: str, action: str, timeout_s: float) -> dict[str, Any]:
    from orchestrator import control

    if not 0 < timeout_s <= 600:
        raise InvalidArgument(f"timeout {timeout_s:g} is out of range: use 0-600 seconds")
    return control.act(sources.context.agents_dir, action, name, timeout_s)


# -- queue, throughput, health, stats, cost, limits -----------------------------------------


def queue(sources: Sources) -> dict[str, Any]:
    counts: Counter[str] = sources.summary(
        lambda listing: Counter(listing.counts), work_counts, Counter()
    )
    agents_count = sources.read(lambda store: len(store.list_agents()) if store else 0)
    return {
        # Served to anyone on loopback: a DSN's password stays out.
        "store": without_password(sources.context.store_target),
        "work": dict(sorted(counts.items())),
        "work_total": sum(counts.values()),
        "agents": agents_count,
    }


def throughput(sources: Sources, window: str, bucket_s: float) -> dict[str, Any]:
    _, window_s = sources.context.window(window)
    if window_s is None or window_s <= 0:
        raise InvalidArgument(f"window {window!r}: give a length, such as 1h")
    if not 1 <= bucket_s <= window_s or window_s / bucket_s > 1440:
        raise InvalidArgument(f"bucket {bucket_s:g}: use 1 s to the window, at most 1440 buckets")
    now = time.time()
    start = now - window_s
    count = int(-(-window_s // bucket_s))
    buckets = [
        {"t": start + n * bucket_s, "completed": 0, "failed": 0, "dead": 0} for n in range(count)
    ]
    finished: list[tuple[float, str]] = sources.summary(
        lambda listing: finished_of(listing.snapshot(), start),
        lambda store: finished_since(store, start),
        [],
    )
    for done, status in finished:
        index = min(int((done - start) // bucket_s), count - 1)
        buckets[index][status] += 1
    return {"window_s": window_s, "bucket_s": bucket_s, "start": start, "buckets": buckets}


def _observed(sources: Sources, window: str | None) -> tuple[Any, Any, HealthReport]:
    """The store, the supervisor and the spans of the window, and the health score of
    them: as ``swarm health`` and ``swarm metrics`` compute it."""
    from orchestrator.telemetry.observe import observe, window_health

    context = sources.context
    label, window_s = context.window(window)
    observation = sources.read(lambda store: observe(store, context.agents_dir))
    collected, report = window_health(observation, context.telemetry, label, window_s)
    return observation, collected, report


def health(sources: Sources, window: str | None) -> dict[str, Any]:
    return _observed(sources, window)[2].to_dict()


def stats(sources: Sources, window: str | None) -> dict[str, Any]:
    from orchestrator.telemetry.stats import collect

    label, window_s = sources.context.window(window)
    started = time.perf_counter()
    collected = collect(sources.context.telemetry.spans_file, window_s)
    return collected.to_dict() | {
        "window": label,
        "read_s": round(time.perf_counter() - started, 3),
    }


def cost(sources: Sources, by: str, window: str) -> dict[str, Any]:
    from orchestrator.ledger import cost_report
    from orchestrator.telemetry.settings import parse_window

    window_s = parse_window(window)
    entries = sources.read(lambda store: store.ledger() if store is not None else [])
    return cost_report(entries, by, window_s)


def limits(sources: Sources) -> dict[str, Any]:
    from orchestrator.limits import status

    config = sources.context.config
    if config is None:
        return {"limits": [], "budgets": []}

    def use(store: Store | None) -> dict[str, Any]:
        return status(store, config) if store is not None else {"limits": [], "budgets": []}

    return sources.read(use)


def metrics_text(sources: Sources) -> str:
    from orchestrator.telemetry.metrics import SwarmCollector, render

    observation, collected, report = _observed(sources, None)
    return render(SwarmCollector(lambda: (observation, collected, report)), "prometheus")


def worktrees(sources: Sources) -> dict[str, Any]:
    """``swarm worktree list --json``; settings (which need a git checkout) are resolved
    only when the store holds a worktree, so a swarm outside git answers an empty list."""
    from pathlib import Path

    from orchestrator.worktrees.lifecycle import all_worktrees
    from orchestrator.worktrees.settings import resolve
    from orchestrator.worktrees.status import overview

    def use(store: Store | None) -> list[dict[str, Any]]:
        if store is None or not all_worktrees(store):
            return []
        config = sources.context.config
        base_dir = config.base_dir if config is not None else Path.cwd()
        worktrees = config.worktrees if config is not None else None
        return overview(store, resolve(worktrees, base_dir, sources.context.store_target))

    return {"worktrees": sources.read(use)}
