"""Spans of the pipeline operations (cancel, retry, a completion with follow-ups),
mixed into ``TracedStore``: each is a span in the item's trace, and each follow-up
starts its own trace, as an enqueue does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.records import WorkItem
from orchestrator.store.base import Enqueued
from orchestrator.telemetry import tracing
from orchestrator.telemetry.tracing import Span

if TYPE_CHECKING:
    from orchestrator.store.base import Store


class TracedPipeline:
    inner: Store

    def _on_item(
        self, name: str, work_id: str, agent_id: str | None, call: Callable[[], WorkItem]
    ) -> WorkItem:
        raise NotImplementedError

    def _begin_trace(self, name: str, item: WorkItem) -> tuple[Span, WorkItem]:
        raise NotImplementedError

    def cancel(self, work_id: str, reason: str | None = None) -> WorkItem:
        return self._on_item(
            "swarm.cancel", work_id, None, lambda: self.inner.cancel(work_id, reason)
        )

    def retry(self, work_id: str) -> WorkItem:
        return self._on_item("swarm.retry", work_id, None, lambda: self.inner.retry(work_id))

    def complete_and_enqueue(
        self,
        work_id: str,
        follow_ups: Sequence[WorkItem],
        result: Any = None,
        agent_id: str | None = None,
    ) -> tuple[WorkItem, Enqueued]:
        if not tracing.enabled():
            return self.inner.complete_and_enqueue(work_id, follow_ups, result, agent_id)
        started = [self._begin_trace("swarm.add_work", item) for item in follow_ups]
        enqueued: list[Enqueued] = []

        def call() -> WorkItem:
            done, added = self.inner.complete_and_enqueue(
                work_id, [item for _, item in started], result, agent_id
            )
            enqueued.append(added)
            return done

        try:
            done = self._on_item("swarm.complete", work_id, agent_id, call)
        except Exception as exc:
            for span, _ in started:
                tracing.set_error(span, str(exc))
            raise
        finally:
            for span, _ in started:
                span.end()
        return done, enqueued[0]
