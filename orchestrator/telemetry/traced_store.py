"""A store that records a span for every operation that changes coordination state.

Spans of item operations join the item's own trace (its stored ``traceparent``): the
enqueue starts it, and the claim, progress, completion or release, whichever process
makes them, continue it. The span of an operation on an item is therefore created when
the operation returns, with its measured start time, because only then is the item,
and so its trace, known (a claim does not know which item it gets).

Read-only queries (get, list, agents), waits and sweeps that expire nothing are not
recorded: dashboards poll them every second and would drown the operations.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from orchestrator.records import (
    ANY,
    Agent,
    ClaimFilter,
    WorkFilter,
    WorkItem,
    WorkStatus,
    with_id,
)
from orchestrator.store import base
from orchestrator.store.base import Enqueued, Store, WorkPage, claim_many, page_work
from orchestrator.store.shared_docs import Change
from orchestrator.telemetry import tracing
from orchestrator.telemetry.traced_named import TracedNamedRecords
from orchestrator.telemetry.traced_pipeline import TracedPipeline
from orchestrator.telemetry.tracing import Span

T = TypeVar("T")


def item_attributes(item: WorkItem) -> dict[str, Any]:
    # Few attributes: each costs about a microsecond in the SDK on the hot path.
    attributes: dict[str, Any] = {
        "swarm.work.id": item.work_item_id,
        "swarm.work.type": item.work_type,
        "swarm.work.status": item.status,
    }
    if item.attempts:
        attributes["swarm.work.attempts"] = item.attempts
    if item.team:
        attributes["swarm.work.team"] = item.team
    if item.agent_id:
        attributes["swarm.agent.id"] = item.agent_id
    return attributes


def _mark_present(span: Span, work_id: str) -> None:
    """An enqueue that found its key taken: the span names the item already there (the
    one its trace began for was never stored)."""
    span.set_attribute("swarm.work.id", work_id)
    span.set_attribute("swarm.work.already_present", True)


def mark_error(span: Span, exc: BaseException) -> None:
    tracing.set_error(span, str(exc))
    span.set_attribute("error.type", type(exc).__name__)
    exit_code = getattr(exc, "exit_code", None)
    if isinstance(exit_code, int):
        span.set_attribute("swarm.exit_code", exit_code)


class TracedStore(TracedPipeline, TracedNamedRecords):
    """Wraps any ``Store``; with telemetry off every call goes straight through."""

    def __init__(self, inner: Store, backend: str) -> None:
        self.inner = inner
        self.path = inner.path
        self.backend = backend
        # Traces of the items this process holds, for spans of operations that fail
        # (a failed operation returns no item to read the trace from).
        self._held: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._commons: dict[str, dict[str, Any]] = {}  # per span name: never changed

    # -- span helpers ------------------------------------------------------------------

    def _span(
        self,
        name: str,
        start_ns: int,
        attributes: dict[str, Any],
        parent: Any = None,
        error: BaseException | None = None,
    ) -> None:
        span = tracing.start_span(name, parent, start_ns, attributes | self._common(name))
        if error is not None:
            mark_error(span, error)
        span.end()

    def _common(self, name: str) -> dict[str, Any]:
        common = self._commons.get(name)
        if common is None:
            common = self._commons[name] = {
                "swarm.operation": name.removeprefix("swarm."),
                "swarm.store.backend": self.backend,
            }
        return common

    def _timed(self, name: str, attributes: dict[str, Any], call: Callable[[], T]) -> T:
        """An operation not tied to one item: a span in the caller's trace."""
        if not tracing.enabled():
            return call()
        start = time.time_ns()
        try:
            result = call()
        except Exception as exc:
            self._span(name, start, attributes, error=exc)
            raise
        self._span(name, start, attributes)
        return result

    def _on_item(
        self, name: str, work_id: str, agent_id: str | None, call: Callable[[], WorkItem]
    ) -> WorkItem:
        """An operation on one item: a span in the item's trace."""
        if not tracing.enabled():
            return call()
        start = time.time_ns()
        attributes: dict[str, Any] = {"swarm.work.id": work_id}
        if agent_id:
            attributes["swarm.agent.id"] = agent_id
        try:
            item = call()
        except Exception as exc:
            self._span(name, start, attributes, self._trace_of(work_id), error=exc)
            raise
        if not item.held:
            with self._lock:
                self._held.pop(work_id, None)
        attributes.update(item_attributes(item))
        self._span(name, start, attributes, self._parent(item))
        return item

    def _trace_of(self, work_id: str) -> Any:
        """The trace of an item an operation failed on (it returned no item)."""
        with self._lock:
            carrier = self._held.get(work_id)
        if carrier is None:
            try:
                carrier = self.inner.get(work_id).trace_context
            except Exception:  # unknown id, store down: the span starts its own trace
                return None
        return tracing.parent_of(carrier)

    @staticmethod
    def _parent(item: WorkItem) -> Any:
        """The item's trace; the caller's span when it is already in that trace (an
        agent's ``invoke_agent`` span), so the operation nests under it."""
        parent = tracing.parent_of(item.trace_context)
        if parent is None or tracing.nests_in_caller(parent):
            return None
        return parent

    def _begin_trace(self, name: str, item: WorkItem) -> tuple[Span, WorkItem]:
        """Start the item's trace (unless it brings one) with its enqueue span, linked
        to what the caller is doing (``swarm up``, a script's own trace). The id is
        given here, not by the store, so that the span names the item."""
        item = with_id(item)
        parent = tracing.parent_of(item.trace_context)
        span = tracing.begin_trace(name, parent, item_attributes(item) | self._common(name))
        if parent is None:
            item = item.evolve(trace_context=tracing.carrier_of(span))
        return span, item

    def _hold(self, item: WorkItem | None) -> None:
        if item is not None and item.trace_context:
            with self._lock:
                if len(self._held) >= 10_000:  # items lost to other holders are never popped
                    self._held.clear()
                self._held[item.work_item_id] = item.trace_context

    # -- agents ------------------------------------------------------------------------

    def register(self, agent: Agent) -> Agent:
        attributes: dict[str, Any] = {"swarm.agent.id": agent.agent_id}
        if agent.team:
            attributes["swarm.agent.team"] = agent.team
        return self._timed("swarm.register", attributes, lambda: self.inner.register(agent))

    def heartbeat(self, agent_id: str) -> int:
        return self._timed(
            "swarm.heartbeat", {"swarm.agent.id": agent_id}, lambda: self.inner.heartbeat(agent_id)
        )

    def deregister(self, agent_id: str) -> Agent:
        return self._timed(
            "swarm.deregister",
            {"swarm.agent.id": agent_id},
            lambda: self.inner.deregister(agent_id),
        )

    def get_agent(self, agent_id: str) -> Agent:
        return self.inner.get_agent(agent_id)

    def list_agents(self) -> list[Agent]:
        return self.inner.list_agents()

    # -- work --------------------------------------------------------------------------

    def add_work(self, item: WorkItem) -> str:
        if not tracing.enabled():
            return self.inner.add_work(item)
        span, item = self._begin_trace("swarm.add_work", item)

        def call() -> str:
            work_id = self.inner.add_work(item)
            if work_id != item.work_item_id:
                _mark_present(span, work_id)
            return work_id

        return self._end_enqueue(span, call)

    def add_many(self, items: Sequence[WorkItem]) -> Enqueued:
        if not tracing.enabled():
            return self.inner.add_many(items)
        with tracing.current_span(
            "swarm.add_many", {"swarm.work.count": len(items)} | self._common("swarm.add_many")
        ) as batch:
            started = [self._begin_trace("swarm.add_work", item) for item in items]
            traced = [item for _, item in started]
            try:
                enqueued = self.inner.add_many(traced)
            except Exception as exc:
                mark_error(batch, exc)
                for span, _ in started:
                    mark_error(span, exc)
                    span.end()
                raise
            batch.set_attribute("swarm.work.added", len(enqueued.added))
            for (span, _), work_id, new in zip(started, enqueued, enqueued.new, strict=True):
                if not new:
                    _mark_present(span, work_id)
                span.end()
        return enqueued

    def _end_enqueue(self, span: Span, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            mark_error(span, exc)
            raise
        finally:
            span.end()

    def claim(
        self, agent_id: str, filters: ClaimFilter = ANY, lease_s: float | None = None
    ) -> WorkItem | None:
        if not tracing.enabled():
            return self.inner.claim(agent_id, filters, lease_s)
        start = time.time_ns()
        attributes: dict[str, Any] = {"swarm.agent.id": agent_id}
        try:
            item = self.inner.claim(agent_id, filters, lease_s)
        except Exception as exc:
            self._span("swarm.claim", start, attributes, error=exc)
            raise
        if item is None:
            # An empty poll is not an operation on anything; an idle swarm polls a lot.
            return None
        self._hold(item)
        attributes.update(item_attributes(item))
        attributes["swarm.claim.wait_ms"] = round((time.time() - item.created_at) * 1000, 1)
        self._span("swarm.claim", start, attributes, tracing.parent_of(item.trace_context))
        return item

    def claim_id(
        self, agent_id: str, work_id: str, lease_s: float | None = None
    ) -> WorkItem | None:
        if not tracing.enabled():
            return self.inner.claim_id(agent_id, work_id, lease_s)
        start = time.time_ns()
        attributes: dict[str, Any] = {"swarm.agent.id": agent_id, "swarm.claim.chosen": True}
        try:
            item = self.inner.claim_id(agent_id, work_id, lease_s)
        except Exception as exc:
            self._span("swarm.claim", start, attributes | {"swarm.work.id": work_id}, error=exc)
            raise
        if item is None:
            return None  # taken meanwhile: the caller falls back to its next choice
        self._hold(item)
        attributes.update(item_attributes(item))
        self._span("swarm.claim", start, attributes, tracing.parent_of(item.trace_context))
        return item

    def claim_many(
        self,
        agent_id: str,
        filters: ClaimFilter = ANY,
        count: int = 1,
        lease_s: float | None = None,
    ) -> list[WorkItem]:
        """Several claims in one round trip: one ``swarm.claim`` span per item, in the
        item's own trace, as if each were claimed alone."""
        if not tracing.enabled():
            return claim_many(self.inner, agent_id, filters, count, lease_s)
        start = time.time_ns()
        attributes: dict[str, Any] = {"swarm.agent.id": agent_id}
        try:
            items = claim_many(self.inner, agent_id, filters, count, lease_s)
        except Exception as exc:
            self._span("swarm.claim", start, attributes, error=exc)
            raise
        now = time.time()
        for item in items:
            self._hold(item)
            one = attributes | item_attributes(item)
            one["swarm.claim.wait_ms"] = round((now - item.created_at) * 1000, 1)
            one["swarm.claim.batch"] = len(items)
            self._span("swarm.claim", start, one, tracing.parent_of(item.trace_context))
        return items

    def claim_new(self, agent_id: str, item: WorkItem) -> WorkItem:
        if not tracing.enabled():
            return self.inner.claim_new(agent_id, item)
        span, item = self._begin_trace("swarm.claim_new", item)
        span.set_attribute("swarm.agent.id", agent_id)
        claimed = self._end_enqueue(span, lambda: self.inner.claim_new(agent_id, item))
        self._hold(claimed)
        return claimed

    def reprioritize(self, work_id: str, priority: str) -> WorkItem:
        return self._on_item(
            "swarm.reprioritize", work_id, None, lambda: self.inner.reprioritize(work_id, priority)
        )

    def progress(
        self,
        work_id: str,
        percent: int,
        status: str = WorkStatus.IN_PROGRESS,
        agent_id: str | None = None,
    ) -> WorkItem:
        return self._on_item(
            "swarm.progress",
            work_id,
            agent_id,
            lambda: self.inner.progress(work_id, percent, status, agent_id),
        )

    def complete(
        self,
        work_id: str,
        status: str = "success",
        points: int | None = None,
        result: Any = None,
        agent_id: str | None = None,
    ) -> WorkItem:
        return self._on_item(
            "swarm.complete",
            work_id,
            agent_id,
            lambda: self.inner.complete(work_id, status, points, result, agent_id),
        )

    def fail(
        self, work_id: str, error: str, agent_id: str | None = None, retry: bool = False
    ) -> WorkItem:
        return self._on_item(
            "swarm.fail",
            work_id,
            agent_id,
            lambda: self.inner.fail(work_id, error, agent_id, retry),
        )

    def release(self, work_id: str, agent_id: str | None = None) -> WorkItem:
        return self._on_item(
            "swarm.release", work_id, agent_id, lambda: self.inner.release(work_id, agent_id)
        )

    def release_agent(self, agent_id: str) -> list[WorkItem]:
        items = self._timed(
            "swarm.release_agent",
            {"swarm.agent.id": agent_id},
            lambda: self.inner.release_agent(agent_id),
        )
        self._item_events("swarm.released", items, {"swarm.released_from": agent_id})
        return items

    def sweep(self) -> list[WorkItem]:
        if not tracing.enabled():
            return self.inner.sweep()
        start = time.time_ns()
        items = self.inner.sweep()
        if items:
            self._span("swarm.sweep", start, {"swarm.work.count": len(items)})
            self._item_events("swarm.lease_expired", items, {})
        return items

    def _item_events(self, name: str, items: list[WorkItem], extra: dict[str, Any]) -> None:
        """A span in each item's trace, so its trace shows why it went back to the queue."""
        if not tracing.enabled():
            return
        now = time.time_ns()
        for item in items:
            self._span(
                name, now, item_attributes(item) | extra, tracing.parent_of(item.trace_context)
            )

    def get(self, work_id: str) -> WorkItem:
        return self.inner.get(work_id)

    def list_work(self, include_terminal: bool = True) -> list[WorkItem]:
        return self.inner.list_work(include_terminal)

    def page_work(self, filters: WorkFilter, offset: int, limit: int) -> WorkPage:
        # A read, untraced like list_work: dashboards poll it (see the module).
        return page_work(self.inner, filters, offset, limit)

    # The API's polled summaries: reads, untraced likewise.
    def work_counts(self) -> Counter[str]:
        return base.work_counts(self.inner)

    def holdings(self) -> dict[str, list[str]]:
        return base.holdings(self.inner)

    def finished_since(self, start: float) -> list[tuple[float, str]]:
        return base.finished_since(self.inner, start)

    def children_of(self, work_id: str) -> list[WorkItem]:
        return base.children_of(self.inner, work_id)

    def run_counts(self, enqueued: Iterable[str]) -> Counter[str]:
        return base.run_counts(self.inner, enqueued)

    def compact(self) -> int:
        return self._timed("swarm.compact", {}, self.inner.compact)

    def update_shared(
        self, names: Sequence[str], change: Change[T], ledger: dict[str, Any] | None = None
    ) -> T:
        attributes: dict[str, Any] = {"swarm.shared.names": list(names)}
        if ledger is not None:
            attributes["swarm.ledger.add"] = True
        return self._timed(
            "swarm.update_shared",
            attributes,
            lambda: self.inner.update_shared(names, change, ledger),
        )

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        return self.inner.ledger(since)

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        self.inner.wait_for_work(timeout, stop)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Backend-specific extras (migrate, paths) pass through untraced.
        return getattr(self.inner, name)
