"""The file store's summaries and pages for the HTTP API, the metrics and the live view
(queue counts, who holds what, what finished when, an item's children, one page of the
listing): computed in ``state.sqlite``, so that a dashboard polling a store of 100,000
items decodes counts and one page, not every item (``store.base`` falls back to a full
listing for a store without them). A mixin, as PostgreSQL's ``pg_summary`` and
``pg_pages`` are, so that ``file.py`` stays within the module size cap."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import orjson

from orchestrator.records import PRIORITIES, TERMINAL_STATUSES, WorkFilter, WorkItem
from orchestrator.store.base import WorkPage
from orchestrator.store.sql_state import SqlState, decode_item

_FINISHED = "('completed', 'failed', 'dead')"
_TERMINAL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")"


def _in(column: str, values: list[Any]) -> str:
    return f"{column} IN ({', '.join('?' * len(values))})"


def page_where(filters: WorkFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a listing ``filters`` accepts, and its parameters."""
    where = [] if filters.include_terminal else [f"status NOT IN {_TERMINAL}"]
    params: list[Any] = []
    fields: tuple[tuple[str, frozenset[str] | None], ...] = (
        ("status", filters.statuses),
        ("work_type", filters.work_types),
        ("team", filters.teams),
    )
    for column, values in fields:
        if values is not None:
            where.append(_in(column, sorted(values)))
            params += sorted(values)
    if filters.priorities is not None:
        # Listed items have known priorities (checked when enqueued): their ranks.
        ranks = sorted({PRIORITIES[p] for p in filters.priorities if p in PRIORITIES})
        where.append(_in("rank", ranks))
        params += ranks
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


class FileSummary:
    def _transaction(self) -> AbstractContextManager[SqlState]:
        raise NotImplementedError  # FileStore's: the lock held, the state current

    def _query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        with self._transaction() as state:
            return state.db.execute(sql, params).fetchall()

    def work_counts(self) -> Counter[str]:
        rows = self._query("SELECT status, count(*) FROM items GROUP BY status")
        return Counter({str(status): int(n) for status, n in rows})

    def holdings(self) -> dict[str, list[str]]:
        rows = self._query(
            "SELECT holder, id FROM items INDEXED BY items_held"
            " WHERE holder IS NOT NULL ORDER BY id"
        )
        held: dict[str, list[str]] = {}
        for holder, work_id in rows:
            held.setdefault(str(holder), []).append(str(work_id))
        return held

    def finished_since(self, start: float) -> list[tuple[float, str]]:
        rows = self._query(
            "SELECT done, status FROM (SELECT coalesce(nullif(json_extract("
            "CAST(doc AS TEXT), '$.completed_at'), 0), updated_at) AS done, status FROM items"
            f" WHERE status IN {_FINISHED}) WHERE done >= ?",
            (start,),
        )
        return [(float(done), str(status)) for done, status in rows]

    def run_counts(self, enqueued: Iterable[str]) -> Counter[str]:
        """``store.base.run_counts`` without decoding items: the run's own counted by
        status in SQL, then the items that name parents (found in their stored text),
        oldest first, each joining the run when a parent is in it."""
        mine = set(enqueued)
        with self._transaction() as state:
            own = state.db.execute(
                "SELECT status, count(*) FROM items"
                " WHERE id IN (SELECT value FROM json_each(?)) GROUP BY status",
                (orjson.dumps(sorted(mine)),),
            ).fetchall()
            waiting = state.db.execute(
                "SELECT id, status, json_extract(CAST(doc AS TEXT), '$.parents') FROM items"
                """ WHERE instr(doc, '"parents":[') ORDER BY created_at, rank, id"""
            ).fetchall()
        counts = Counter({str(status): int(n) for status, n in own})
        for work_id, status, parents in waiting:  # list-work's order, sorted by age
            if work_id not in mine and not mine.isdisjoint(orjson.loads(parents)):
                mine.add(work_id)
                counts[str(status)] += 1
        return counts

    def children_of(self, work_id: str) -> list[WorkItem]:
        rows = self._query(
            "SELECT doc FROM links JOIN items ON items.id = links.child"
            " WHERE links.parent = ? ORDER BY items.id",
            (work_id,),
        )
        return [decode_item(doc) for (doc,) in rows]

    def page_work(self, filters: WorkFilter, offset: int, limit: int) -> WorkPage:
        where, params = page_where(filters)
        with self._transaction() as state:
            total = int(
                state.db.execute(f"SELECT count(*) FROM items{where}", params).fetchone()[0]
            )
            docs = state.db.execute(
                f"SELECT doc FROM items{where} ORDER BY rank, created_at, id LIMIT ? OFFSET ?",
                [*params, max(0, limit), max(0, offset)],
            ).fetchall()
        return WorkPage([decode_item(doc) for (doc,) in docs], total)
