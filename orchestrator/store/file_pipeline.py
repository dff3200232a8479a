"""The file store's pipeline operations: cancel, retry, and a completion that enqueues
follow-ups in the same journal record (the rules are in ``pipeline``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.errors import NotFound
from orchestrator.ids import check_id
from orchestrator.records import Agent, WorkItem, WorkStatus
from orchestrator.store import pipeline
from orchestrator.store import state as rules
from orchestrator.store.base import Enqueued
from orchestrator.store.sql_state import SqlState


class FilePipeline:
    """Mixed into ``FileStore``, whose transaction and commit it uses."""

    max_attempts: int
    clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[SqlState]]

    def _commit(
        self,
        op: str,
        items: Sequence[WorkItem] = (),
        agents: Sequence[Agent] = (),
        gone: Sequence[str] = (),
        by: str | None = None,
    ) -> None:
        raise NotImplementedError

    def cancel(self, work_id: str, reason: str | None = None) -> WorkItem:
        check_id(work_id, "work id")
        with self._transaction() as state:
            item = pipeline.cancellable(_item(state, work_id))
            new = pipeline.cancelled(item, reason or "cancelled by an operator", self.clock())
            self._commit("cancel", [new])
            return new

    def retry(self, work_id: str) -> WorkItem:
        check_id(work_id, "work id")
        with self._transaction() as state:
            item = _item(state, work_id)
            new = pipeline.retried(item, lambda p: _status(state, p), self.clock())
            self._commit("retry", [new])
            return new

    def complete_and_enqueue(
        self,
        work_id: str,
        follow_ups: Sequence[WorkItem],
        result: Any = None,
        agent_id: str | None = None,
    ) -> tuple[WorkItem, Enqueued]:
        prepared = [rules.prepared(item) for item in follow_ups]
        with self._transaction() as state:
            item = rules.held_item(state, work_id, agent_id)
            now = self.clock()
            done = rules.completed(item, "success", None, result, now)
            new, enqueued = rules.added(state, prepared, now, self.max_attempts, seen=[done])
            self._commit("complete", [done, *new], by=agent_id)
            return done, enqueued


def _item(state: SqlState, work_id: str) -> WorkItem:
    item = state.items.get(work_id)
    if item is None:
        raise NotFound(f"work item {work_id} not found")
    return item


def _status(state: SqlState, work_id: str) -> str:
    """A parent's status; one archived (no longer in the state) had completed."""
    item = state.items.get(work_id)
    return WorkStatus.COMPLETED if item is None else item.status
