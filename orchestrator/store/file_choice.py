"""The file store's operations on one chosen item: claim it (the model's pick of an
intelligent claim) and change its priority (an accepted suggestion). A mixin, so that
``file.py`` stays within the module size cap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from orchestrator.errors import Conflict, NotFound
from orchestrator.ids import check_id
from orchestrator.records import WorkItem, WorkStatus
from orchestrator.store import state as rules

if TYPE_CHECKING:
    from orchestrator.store.sql_state import SqlState


class FileChosenWork:
    lease_s: float
    clock: Callable[[], float]

    def _transaction(self) -> AbstractContextManager[SqlState]:
        raise NotImplementedError  # FileStore's: the lock held, the state current

    def _commit(self, op: str, items: Sequence[WorkItem] = (), *, by: str | None = None) -> None:
        raise NotImplementedError  # FileStore's: one journal record

    def claim_id(
        self, agent_id: str, work_id: str, lease_s: float | None = None
    ) -> WorkItem | None:
        check_id(agent_id, "agent id")
        check_id(work_id, "work id")
        with self._transaction() as state:
            item = state.items.get(work_id)
            if item is None:
                raise NotFound(f"work item {work_id} not found")
            if item.status != WorkStatus.PENDING:
                return None  # its stale entry in the pending heap is dropped lazily
            mine = rules.claimed(item, agent_id, self.clock(), lease_s or self.lease_s)
            self._commit("claim", [mine], by=agent_id)
            return mine

    def reprioritize(self, work_id: str, priority: str) -> WorkItem:
        rules.check_priority(priority)
        with self._transaction() as state:
            item = state.items.get(check_id(work_id, "work id"))
            if item is None:
                raise NotFound(f"work item {work_id} not found")
            if item.terminal:
                raise Conflict(f"work item {work_id} is {item.status}: its priority is final")
            new = item.evolve(priority=priority, updated_at=self.clock())
            self._commit("reprioritize", [new])
            return new
