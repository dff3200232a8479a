"""The PostgreSQL store's operations on one chosen item: claim it (the model's pick of
an intelligent claim) and change its priority (an accepted suggestion). A mixin, so
that ``postgres.py`` stays within the module size cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from orchestrator.errors import Conflict, NotFound
from orchestrator.ids import check_id
from orchestrator.records import PRIORITIES, WorkItem
from orchestrator.store import state as rules
from orchestrator.store.pg_sql import CLAIM_ID, COLS, REPRIORITIZE

T = TypeVar("T")


class ChosenWork:
    lease_s: float

    def _run(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:
        raise NotImplementedError  # PostgresStore's: one transaction, retried

    def claim_id(
        self, agent_id: str, work_id: str, lease_s: float | None = None
    ) -> WorkItem | None:
        check_id(agent_id, "agent id")
        params = {"by": agent_id, "id": check_id(work_id, "work id"), "lease": lease_s}

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem | None:
            row = cur.execute(CLAIM_ID, params | {"lease": lease_s or self.lease_s}).fetchone()
            if row is not None:
                return WorkItem(*row)
            found = cur.execute(
                f"SELECT {COLS} FROM work_items WHERE work_item_id = %(id)s", params
            )
            item = WorkItem(*found.fetchone() or _missing(work_id))
            return item if retrying and item.held and item.agent_id == agent_id else None

        return self._run(work)

    def reprioritize(self, work_id: str, priority: str) -> WorkItem:
        rank = PRIORITIES[rules.check_priority(priority)]
        params = {"id": check_id(work_id, "work id"), "p": priority, "rank": rank, "by": None}

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem:
            row = cur.execute(REPRIORITIZE, params).fetchone()
            if row is not None:
                return WorkItem(*row)
            found = cur.execute(
                f"SELECT {COLS} FROM work_items WHERE work_item_id = %(id)s", params
            )
            item = WorkItem(*found.fetchone() or _missing(work_id))
            raise Conflict(f"work item {work_id} is {item.status}: its priority is final")

        return self._run(work)


def _missing(work_id: str) -> tuple[Any, ...]:
    raise NotFound(f"work item {work_id} not found")
