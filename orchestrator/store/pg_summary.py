"""The PostgreSQL store's summaries for the HTTP API's views (queue counts, who holds
what, what finished when, an item's children): computed in the database, so that a
dashboard polling them on a store of 100,000 items reads counts, not 100,000 rows
(``store.base``'s ``work_counts``, ``holdings``, ``finished_since`` and ``children_of``
fall back to a full listing elsewhere). A mixin, so that ``postgres.py`` stays within
the module size cap."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from orchestrator.records import WorkItem
from orchestrator.store.pg_sql import HELD, W_COLS

T = TypeVar("T")

_FINISHED = "('completed', 'failed', 'dead')"


class PgSummary:
    def _run(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:
        raise NotImplementedError  # PostgresStore's: one transaction, retried

    def work_counts(self) -> Counter[str]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> Counter[str]:
            rows = cur.execute("SELECT status, count(*) FROM work_items GROUP BY status")
            return Counter({str(status): int(n) for status, n in rows.fetchall()})

        return self._run(work)

    def holdings(self) -> dict[str, list[str]]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> dict[str, list[str]]:
            rows = cur.execute(
                "SELECT agent_id, array_agg(work_item_id ORDER BY work_item_id)"
                f" FROM work_items WHERE status IN {HELD} AND agent_id IS NOT NULL"
                " GROUP BY agent_id"
            ).fetchall()
            return {str(agent): list(ids) for agent, ids in rows}

        return self._run(work)

    def finished_since(self, start: float) -> list[tuple[float, str]]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[tuple[float, str]]:
            rows = cur.execute(
                "SELECT done, status FROM (SELECT coalesce(nullif(completed_at, 0),"
                " updated_at) AS done, status FROM work_items"
                f" WHERE status IN {_FINISHED}) finished WHERE done >= %s",
                (start,),
            ).fetchall()
            return [(float(done), str(status)) for done, status in rows]

        return self._run(work)

    def children_of(self, work_id: str) -> list[WorkItem]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[WorkItem]:
            rows = cur.execute(
                f"SELECT {W_COLS} FROM work_edges e JOIN work_items w"
                " ON w.work_item_id = e.child WHERE e.parent = %s ORDER BY w.work_item_id",
                (work_id,),
            ).fetchall()
            return [WorkItem(*row) for row in rows]

        return self._run(work)
