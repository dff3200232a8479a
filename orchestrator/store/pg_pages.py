"""The PostgreSQL store's pages of the work listing (the HTTP API's ``GET /api/work``):
the filters, the order, the page and the count in one statement, so that a dashboard
polling a page of 100 out of 100,000 items reads 100 rows, not 100,000.

The order is list-work's (``pg_sql.LIST_ORDER``, mirroring ``records.list_order``);
migration 0011 indexes it for the unfinished items, which the default listing shows.
A mixin, so that ``postgres.py`` stays within the module size cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from orchestrator.records import WorkFilter, WorkItem
from orchestrator.store.base import WorkPage
from orchestrator.store.pg_sql import COLS, LIST_ORDER, LIVE, list_order

T = TypeVar("T")

# Each restricted field of the filter, and its column.
_FIELDS = (
    ("statuses", "status"),
    ("work_types", "work_type"),
    ("teams", "team"),
    ("priorities", "priority"),
)
_P_COLS = ", ".join(f"p.{c.strip()}" for c in COLS.split(","))


def page_sql(filters: WorkFilter) -> tuple[str, dict[str, Any]]:
    """The statement of one page, and its parameters besides offset and limit.

    The live rule is written out, not a parameter, so that the planner matches it to the
    partial index of migration 0011. One row per item of the page, led by the total; a
    page past the end is one row holding only the total (hence the outer join)."""
    where = [] if filters.include_terminal else [f"status IN {LIVE}"]
    params: dict[str, Any] = {}
    for field, column in _FIELDS:
        values = getattr(filters, field)
        if values is not None:
            where.append(f"{column} = ANY(%({field})s)")
            params[field] = sorted(values)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"WITH page AS (SELECT {COLS}, priority_rank FROM work_items{clause}"
        f" ORDER BY {LIST_ORDER} LIMIT %(limit)s OFFSET %(offset)s),"
        f" total AS (SELECT count(*) AS n FROM work_items{clause})"
        f" SELECT total.n, {_P_COLS} FROM total LEFT JOIN page p ON true"
        f" ORDER BY {list_order('p')}"
    )
    return sql, params


class PgPages:
    def _run(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:
        raise NotImplementedError  # PostgresStore's: one transaction, retried

    def page_work(self, filters: WorkFilter, offset: int, limit: int) -> WorkPage:
        """``store.base.page_work`` in one statement (and the lease check every
        operation makes first, so that a page shows what ``list_work`` would)."""
        sql, params = page_sql(filters)
        params |= {"offset": max(0, offset), "limit": max(0, limit)}

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkPage:
            # Never a prepared (generic) plan: only a plan made for the values given
            # can use the partial index.
            rows = cur.execute(sql, params, prepare=False).fetchall()
            total = int(rows[0][0]) if rows else 0
            return WorkPage([WorkItem(*row[1:]) for row in rows if row[1] is not None], total)

        return self._run(work)
