"""The PostgreSQL store's pipeline operations: parents linked at enqueue, cancel, retry,
and a completion that enqueues follow-ups in the same transaction.

The rules are those of ``pipeline`` (shared with the file store); how a parent's change
moves its children lives in the schema (the trigger of migration 0005), so every path
that changes a status -- lease expiry in SQL included -- settles the children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from orchestrator.errors import Conflict, NotFound
from orchestrator.ids import check_id
from orchestrator.records import TERMINAL_STATUSES, WorkItem, WorkStatus
from orchestrator.store import pipeline
from orchestrator.store.base import Enqueued
from orchestrator.store.pg_sql import COLS, HOLDER, insert_params, logged
from orchestrator.store.state import check_holder

T = TypeVar("T")

_TERMINAL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")"

CANCEL = logged(
    "UPDATE work_items w SET status = 'cancelled', error = %(reason)s,"
    " updated_at = swarm_now(), completed_at = swarm_now(), lease_expires_at = NULL"
    f" WHERE w.work_item_id = %(id)s AND w.status NOT IN {_TERMINAL}",
    "cancel",
)
RETRY = logged(
    "UPDATE work_items w SET status = %(status)s, agent_id = NULL, progress = 0, attempts = 0,"
    " error = NULL, result = NULL, completion_status = NULL, claimed_at = NULL,"
    " completed_at = NULL, lease_expires_at = NULL, updated_at = swarm_now()"
    " WHERE w.work_item_id = %(id)s AND w.status = %(was)s",
    "retry",
)
COMPLETE = logged(
    "UPDATE work_items w SET status = 'completed', completion_status = 'success',"
    " result = %(result)s, progress = 100, updated_at = swarm_now(),"
    " completed_at = swarm_now(), lease_expires_at = NULL" + HOLDER,
    "complete",
)
# Parents by id or key, locked against a concurrent change until this enqueue commits:
# a parent completing meanwhile waits, and its trigger then sees the new child's edge.
PARENTS = (
    "SELECT work_item_id, key, status FROM work_items"
    " WHERE work_item_id = ANY(%(refs)s) OR key = ANY(%(refs)s)"
    " ORDER BY work_item_id FOR SHARE"
)
EDGES = "INSERT INTO work_edges (parent, child) SELECT * FROM unnest(%s::text[], %s::text[])"


def link(cur: psycopg.Cursor[Any], rows: list[dict[str, Any]]) -> None:
    """Resolve the parents of new rows (ids or keys, stored or in the batch) to ids and
    set each row's first status and count of open parents; refuse unknown parents and
    cycles. Call before inserting the rows, then ``insert_edges``."""
    if not any(row["parents"] for row in rows):
        return
    batch = {row["work_item_id"] for row in rows} | {row["key"] for row in rows if row["key"]}
    refs = sorted({r for row in rows for r in row["parents"] or () if r not in batch})
    by_ref: dict[str, str] = {}
    status: dict[str, str] = {}
    if refs:
        cur.execute(PARENTS, {"refs": refs})
        for work_id, key, state in cur.fetchall():
            by_ref[work_id] = work_id
            if key is not None:
                by_ref.setdefault(key, work_id)
            status[work_id] = state
    items = [
        WorkItem(row["work_item_id"], "", "", key=row["key"], parents=row["parents"])
        for row in rows
    ]
    resolved = pipeline.resolve(items, by_ref.get)
    first: dict[str, WorkItem] = {}
    for item in pipeline.topological(resolved):
        first[item.work_item_id] = pipeline.started(
            item, lambda p: first[p].status if p in first else status[p], 0.0
        )
    for row, item in zip(rows, resolved, strict=True):
        start = first[item.work_item_id]
        row["parents"] = item.parents
        row["status"] = start.status
        row["error"] = start.error
        row["open_parents"] = sum(
            1
            for p in item.parents or ()
            if (first[p].status if p in first else status[p]) != WorkStatus.COMPLETED
        )


def insert_edges(cur: psycopg.Cursor[Any], rows: list[dict[str, Any]]) -> None:
    parents: list[str] = []
    children: list[str] = []
    for row in rows:
        for parent in row["parents"] or ():
            parents.append(parent)
            children.append(row["work_item_id"])
    if parents:
        cur.execute(EDGES, (parents, children))


class PgPipeline:
    """Mixed into ``PostgresStore``, whose transaction runner and enqueue it uses."""

    channel: str
    _run: Callable[..., Any]

    def _insert_pending(self, cur: psycopg.Cursor[Any], rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def add_many(self, items: Sequence[WorkItem]) -> Enqueued:
        raise NotImplementedError

    def _lock_keys(self, cur: psycopg.Cursor[Any], keys: Sequence[str | None]) -> dict[str, str]:
        raise NotImplementedError

    def cancel(self, work_id: str, reason: str | None = None) -> WorkItem:
        params: dict[str, str | None] = {
            "id": check_id(work_id, "work id"),
            "reason": reason or "cancelled by an operator",
            "by": None,
        }

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem:
            cur.execute(CANCEL, params)
            row = cur.fetchone()
            if row is not None:
                return WorkItem(*row)
            item = _get(cur, work_id)
            if retrying and item.status == WorkStatus.CANCELLED:
                return item
            raise Conflict(f"work item {work_id} is already {item.status}")

        result: WorkItem = self._run(work)
        return result

    def retry(self, work_id: str) -> WorkItem:
        check_id(work_id, "work id")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem:
            item = _get(cur, work_id, lock=True)
            if retrying and item.status in (WorkStatus.PENDING, WorkStatus.BLOCKED):
                return item
            status: dict[str, str] = {}
            if item.parents:
                cur.execute(
                    "SELECT work_item_id, status FROM work_items WHERE work_item_id = ANY(%s)"
                    " ORDER BY work_item_id FOR SHARE",
                    (item.parents,),
                )
                status = dict(cur.fetchall())
            new = pipeline.retried(item, lambda p: status.get(p, WorkStatus.COMPLETED), 0.0)
            cur.execute(
                RETRY, {"id": work_id, "status": new.status, "was": item.status, "by": None}
            )
            row = cur.fetchone()
            if row is None:
                raise Conflict(f"work item {work_id} changed concurrently; try again")
            if new.status == WorkStatus.PENDING:
                cur.execute("SELECT pg_notify(%s, '')", (self.channel,))
            return WorkItem(*row)

        result: WorkItem = self._run(work)
        return result

    def complete_and_enqueue(
        self,
        work_id: str,
        follow_ups: Sequence[WorkItem],
        result: Any = None,
        agent_id: str | None = None,
    ) -> tuple[WorkItem, Enqueued]:
        rows = [insert_params(item, WorkStatus.PENDING, None, 0) for item in follow_ups]
        params = {
            "id": check_id(work_id, "work id"),
            "by": check_id(agent_id, "agent id") if agent_id is not None else None,
            "result": None if result is None else Jsonb(result),
        }
        max_attempts: int = getattr(self, "max_attempts", 3)
        for row, item in zip(rows, follow_ups, strict=True):
            row["max_attempts"] = item.max_attempts if item.max_attempts > 0 else max_attempts
        ids = tuple(row["work_item_id"] for row in rows)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> tuple[WorkItem, Enqueued]:
            cur.execute(COMPLETE, params)
            row = cur.fetchone()
            if row is None:
                item = _get(cur, work_id)
                if retrying and item.status == WorkStatus.COMPLETED:
                    return item, Enqueued(ids, (True,) * len(ids))  # our first try committed
                check_holder(item, agent_id)
                raise Conflict(f"work item {work_id} changed concurrently; try again")
            # As add_many: a follow-up whose key an item holds already is not added.
            holders = self._lock_keys(cur, [r["key"] for r in rows])
            fresh = [dict(r) for r in rows if r["key"] is None or r["key"] not in holders]
            if fresh:
                self._insert_pending(cur, fresh)
            found = tuple(holders.get(r["key"], r["work_item_id"]) for r in rows)
            new = tuple(r["key"] is None or r["key"] not in holders for r in rows)
            return WorkItem(*row), Enqueued(found, new)

        done: tuple[WorkItem, Enqueued] = self._run(work)
        return done


def _get(cur: psycopg.Cursor[Any], work_id: str, lock: bool = False) -> WorkItem:
    cur.execute(
        f"SELECT {COLS} FROM work_items WHERE work_item_id = %s" + (" FOR UPDATE" if lock else ""),
        (work_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"work item {work_id} not found")
    return WorkItem(*row)
