"""The PostgreSQL store: one queue shared by supervisors on several machines.

Same contract as the file store. Claims are one statement, ``UPDATE … WHERE id =
(SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``, over a partial index of pending items;
times come from the database clock (``swarm_now()``), so hosts with skewed clocks
agree on leases; every operation first returns expired leases to the queue, in the
same transaction, as the file store does. Each change also appends to ``events``.

A lost connection is retried with backoff (logged once per outage); an operation whose
commit may or may not have reached the server is recognised on retry, so nothing is
done twice. Idle agents wait on ``LISTEN`` for new work instead of polling hard.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from orchestrator.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    StoreError,
    Timeout,
)
from orchestrator.ids import check_id
from orchestrator.records import Agent, WorkItem, WorkStatus
from orchestrator.store import pipeline
from orchestrator.store import state as rules
from orchestrator.store.base import Enqueued
from orchestrator.store.pg_choice import ChosenWork
from orchestrator.store.pg_claim import PgClaims
from orchestrator.store.pg_named import PgNamedRecords
from orchestrator.store.pg_pages import PgPages
from orchestrator.store.pg_pipeline import PgPipeline, insert_edges, link
from orchestrator.store.pg_schema import apply_migrations
from orchestrator.store.pg_sql import (
    AGENT_COLS,
    COLS,
    EXPIRE,
    HELD,
    HOLDER,
    INSERT,
    KEY_HOLDERS,
    LIST_ORDER,
    LIVE,
    LOCK_KEYS,
    SCHEMA_RE,
    SWEEP_LOCK,
    SWEEP_TRY_LOCK,
    SWEEP_UNLOCK,
    insert_params,
    key_locks,
    logged,
    returned,
)
from orchestrator.store.pg_summary import PgSummary
from orchestrator.store.shared_docs import PgSharedDocs

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PostgresStore(
    PgClaims, ChosenWork, PgPages, PgSummary, PgPipeline, PgSharedDocs, PgNamedRecords
):
    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "swarmsh",
        lease_s: float = 60.0,
        max_attempts: int = 3,
        connect_timeout_s: float = 10.0,
        retry_for_s: float = 60.0,
        **_ignored: Any,
    ) -> None:
        if not SCHEMA_RE.fullmatch(schema):
            raise InvalidArgument(f"schema {schema!r}: use lowercase letters, digits and _")
        self.dsn = dsn
        self.path = _redact(dsn)
        self.schema = schema
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.retry_for_s = retry_for_s
        self.channel = f"swarmsh_work_{schema}"
        # Autocommit: a claim is one statement; multi-statement operations open their
        # own transaction.
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={schema}",
            "application_name": f"swarmsh:{schema}",
            "connect_timeout": max(1, int(connect_timeout_s)),
        }
        self._outage_logged = False
        self.migrate()
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=4,
            kwargs=self._connect_kwargs,
            open=False,
            timeout=connect_timeout_s,
            name=f"swarmsh-{schema}",
        )
        self._pool.open(wait=False)
        self._listener: psycopg.Connection[Any] | None = None

    # -- connections, migrations, retries ------------------------------------------------

    def _connect(self, **extra: Any) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.dsn, **(self._connect_kwargs | extra))
        except psycopg.OperationalError as exc:
            raise _connection_error(self.path, exc) from None

    def migrate(self) -> int:
        """Apply the versioned migrations not applied yet; return the schema version."""

        def attempt(retrying: bool) -> int:
            with self._connect(autocommit=True) as conn:
                return apply_migrations(conn, self.schema, self.path)

        return self._retrying(attempt)

    def _retrying(self, action: Callable[[bool], T]) -> T:
        """Run ``action``; when the connection is lost under it, wait and run it again
        (``retrying=True``) for up to ``retry_for_s``, logging once per outage."""
        started = time.monotonic()
        delay = 0.05
        retrying = False
        while True:
            try:
                result = action(retrying)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise
                if not self._outage_logged:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc
                    logger.warning("lost PostgreSQL at %s (%s); retrying", self.path, first_line)
                    self._outage_logged = True
                if time.monotonic() - started > self.retry_for_s:
                    raise Timeout(
                        f"PostgreSQL at {self.path} unreachable for {self.retry_for_s:g}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                retrying = True
                continue
            if self._outage_logged:
                logger.warning("PostgreSQL at %s is reachable again", self.path)
                self._outage_logged = False
            return result

    def _run(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:
        """Run ``work`` in one transaction that first expires leases, retried when the
        connection is lost; ``work`` gets ``retrying=True`` on a retry, to recognise an
        earlier try whose commit reached the server."""

        def attempt(retrying: bool) -> T:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute(EXPIRE)
                return work(cur, retrying)

        return self._retrying(attempt)

    def _held(
        self,
        cur: psycopg.Cursor[Any],
        sql: str,
        params: dict[str, Any],
        retrying: bool,
        done: Callable[[WorkItem], bool],
    ) -> WorkItem:
        """Run an update of a held item; explain a miss as NotFound or Conflict."""
        cur.execute(sql, params)
        row = cur.fetchone()
        if row is not None:
            return WorkItem(*row)
        cur.execute(f"SELECT {COLS} FROM work_items WHERE work_item_id = %s", (params["id"],))
        found = cur.fetchone()
        if found is None:
            raise NotFound(f"work item {params['id']} not found")
        item = WorkItem(*found)
        if retrying and done(item):
            return item  # our first try did commit before the connection dropped
        rules.check_holder(item, params["by"])
        raise Conflict(f"work item {item.work_item_id} changed concurrently; try again")

    # -- agents ------------------------------------------------------------------------

    def register(self, agent: Agent) -> Agent:
        rules.check_agent(agent)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> Agent:
            cur.execute(
                f"INSERT INTO agents ({AGENT_COLS}) VALUES (%(agent_id)s, %(capacity)s,"
                " %(status)s, %(specialization)s, %(team)s, %(role)s, %(host)s, %(pid)s,"
                " swarm_now(), swarm_now()) ON CONFLICT (agent_id) DO UPDATE SET"
                " capacity = excluded.capacity, status = excluded.status,"
                " specialization = excluded.specialization, team = excluded.team,"
                " role = excluded.role, host = excluded.host, pid = excluded.pid,"
                f" last_heartbeat = excluded.last_heartbeat RETURNING {AGENT_COLS}",
                agent.to_dict(),
            )
            row = cur.fetchone()
            self._event(cur, "register", agent.agent_id, agent_id=agent.agent_id)
            return Agent(*row)  # type: ignore[misc]

        return self._run(work)

    def _event(self, cur: psycopg.Cursor[Any], op: str, by: str | None, **what: Any) -> None:
        cur.execute(
            "INSERT INTO events (ts, op, by_agent, work_item_id, agent_id, status)"
            " VALUES (swarm_now(), %s, %s, %s, %s, %s)",
            (op, by, what.get("work_item_id"), what.get("agent_id"), what.get("status")),
        )

    def heartbeat(self, agent_id: str) -> int:
        check_id(agent_id, "agent id")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> int:
            cur.execute(
                "UPDATE agents SET last_heartbeat = swarm_now() WHERE agent_id = %s", (agent_id,)
            )
            known = cur.rowcount
            cur.execute(
                "UPDATE work_items SET lease_expires_at = swarm_now() + %s,"
                f" updated_at = swarm_now() WHERE agent_id = %s AND status IN {HELD}",
                (self.lease_s, agent_id),
            )
            held = cur.rowcount
            if not known and not held:
                raise NotFound(f"agent {agent_id} not found")
            return held

        return self._run(work)

    def deregister(self, agent_id: str) -> Agent:
        check_id(agent_id, "agent id")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> Agent:
            cur.execute(
                logged(
                    "UPDATE work_items w SET status = 'pending', agent_id = NULL, progress = 0,"
                    " claimed_at = NULL, updated_at = swarm_now(), lease_expires_at = NULL"
                    f" WHERE w.agent_id = %(by)s AND w.status IN {HELD}",
                    "deregister",
                ),
                {"by": agent_id},
            )
            cur.execute(
                f"DELETE FROM agents WHERE agent_id = %s RETURNING {AGENT_COLS}", (agent_id,)
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"agent {agent_id} not found")
            self._event(cur, "deregister", agent_id, agent_id=agent_id)
            return Agent(*row)

        return self._run(work)

    def get_agent(self, agent_id: str) -> Agent:
        check_id(agent_id, "agent id")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> Agent:
            cur.execute(f"SELECT {AGENT_COLS} FROM agents WHERE agent_id = %s", (agent_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"agent {agent_id} not found")
            return Agent(*row)

        return self._run(work)

    def list_agents(self) -> list[Agent]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[Agent]:
            cur.execute(f"SELECT {AGENT_COLS} FROM agents ORDER BY registered_at, agent_id")
            return [Agent(*row) for row in cur.fetchall()]

        return self._run(work)

    # -- work ------------------------------------------------------------------------------

    def add_work(self, item: WorkItem) -> str:
        return self.add_many([item])[0]

    def add_many(self, items: Sequence[WorkItem]) -> Enqueued:
        rows = [insert_params(item, WorkStatus.PENDING, None, self.max_attempts) for item in items]

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> Enqueued:
            mine: set[str] = set()
            if retrying:  # the ids were made before the first try: found means it committed
                cur.execute(
                    "SELECT work_item_id FROM work_items WHERE work_item_id = ANY(%s)",
                    ([row["work_item_id"] for row in rows],),
                )
                mine = {found for (found,) in cur.fetchall()}
            holders = self._lock_keys(cur, [row["key"] for row in rows])
            fresh: list[dict[str, Any]] = []
            ids: list[str] = []
            flags: list[bool] = []
            for row in rows:
                work_id, key = row["work_item_id"], row["key"]
                ours = work_id in mine
                holder = holders.get(key) if key is not None else None
                if holder is not None and not ours:
                    ids.append(holder)
                    flags.append(False)
                    continue
                if key is not None:
                    holders[key] = work_id  # a later item of this batch finds it
                if not ours:
                    fresh.append(row)
                ids.append(work_id)
                flags.append(True)
            if fresh:
                self._insert_pending(cur, fresh)
            return Enqueued(tuple(ids), tuple(flags))

        return self._run(work)

    def _lock_keys(self, cur: psycopg.Cursor[Any], keys: Sequence[str | None]) -> dict[str, str]:
        """Take the transaction's locks on these keys, then return which of them are
        held by an item (key -> id). Enqueuers of one key wait here for each other, and
        the lookup runs as a new statement after the wait, so it sees what the one
        before committed; locks are taken in one global order, so never a deadlock."""
        wanted = sorted({key for key in keys if key is not None})
        if not wanted:
            return {}
        cur.execute(LOCK_KEYS, (key_locks(wanted),))
        cur.execute(KEY_HOLDERS, (wanted,))
        return {key: work_id for key, work_id in cur.fetchall()}

    def _insert_pending(self, cur: psycopg.Cursor[Any], rows: list[dict[str, Any]]) -> None:
        link(cur, rows)  # parents: ids, first status, open count (pg_pipeline)
        try:
            cur.executemany(INSERT, rows)
        except psycopg.errors.UniqueViolation:
            raise Conflict("a work item with one of these ids already exists") from None
        insert_edges(cur, rows)
        cur.execute(
            "INSERT INTO events (ts, op, work_item_id, status)"
            " SELECT swarm_now(), 'add', unnest(%s::text[]), 'pending'",
            ([row["work_item_id"] for row in rows],),
        )
        cur.execute("SELECT pg_notify(%s, '')", (self.channel,))

    def claim_new(self, agent_id: str, item: WorkItem) -> WorkItem:
        check_id(agent_id, "agent id")
        params = insert_params(
            pipeline.without_parents(item), WorkStatus.CLAIMED, agent_id, self.max_attempts
        )

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem:
            cur.execute(
                f"SELECT {COLS} FROM work_items WHERE work_item_id = %s", (params["work_item_id"],)
            )
            existing = cur.fetchone()
            if existing is not None:
                if retrying:
                    return WorkItem(*existing)
                raise Conflict(f"work item {params['work_item_id']} already exists")
            holder = self._lock_keys(cur, [params["key"]]).get(params["key"])
            if holder is not None:
                raise Conflict(f"work key {params['key']!r} is taken by {holder}")
            cur.execute(
                INSERT.replace("%(claimed_at)s", "swarm_now()").replace(
                    "%(lease_expires_at)s", "swarm_now() + %(lease)s"
                )
                + f" RETURNING {COLS}",
                params | {"lease": self.lease_s},
            )
            row = cur.fetchone()
            self._event(
                cur,
                "claim_new",
                agent_id,
                work_item_id=params["work_item_id"],
                agent_id=agent_id,
                status=WorkStatus.CLAIMED,
            )
            return WorkItem(*row)  # type: ignore[misc]

        return self._run(work)

    def progress(
        self,
        work_id: str,
        percent: int,
        status: str = WorkStatus.IN_PROGRESS,
        agent_id: str | None = None,
    ) -> WorkItem:
        rules.check_percent(percent)
        rules.check_progress_status(status)
        params = {
            "id": check_id(work_id, "work id"),
            "by": _agent(agent_id),
            "pct": percent,
            "status": status,
            "lease": self.lease_s,
        }
        sql = logged(
            "UPDATE work_items w SET progress = %(pct)s, status = %(status)s,"
            " updated_at = swarm_now(), lease_expires_at = swarm_now() + %(lease)s" + HOLDER,
            "progress",
        )
        return self._run(
            lambda cur, retrying: self._held(cur, sql, params, retrying, lambda i: False)
        )

    def complete(
        self,
        work_id: str,
        status: str = "success",
        points: int | None = None,
        result: Any = None,
        agent_id: str | None = None,
    ) -> WorkItem:
        rules.check_points(points)
        rules.check_complete_status(status)
        final = WorkStatus.COMPLETED if status == "success" else WorkStatus.FAILED
        params = {
            "id": check_id(work_id, "work id"),
            "by": _agent(agent_id),
            "status": final,
            "how": status,
            "points": points,
            "result": None if result is None else Jsonb(result),
        }
        sql = logged(
            "UPDATE work_items w SET status = %(status)s, completion_status = %(how)s,"
            " story_points = %(points)s, result = %(result)s,"
            " progress = CASE WHEN %(how)s = 'success' THEN 100 ELSE w.progress END,"
            " updated_at = swarm_now(), completed_at = swarm_now(), lease_expires_at = NULL"
            + HOLDER,
            "complete",
        )
        return self._run(
            lambda cur, retrying: self._held(
                cur,
                sql,
                params,
                retrying,
                lambda i: i.status == final and i.agent_id == (agent_id or i.agent_id),
            )
        )

    def fail(
        self, work_id: str, error: str, agent_id: str | None = None, retry: bool = False
    ) -> WorkItem:
        params = {"id": check_id(work_id, "work id"), "by": _agent(agent_id), "error": error}
        if retry:
            update = "UPDATE work_items w SET " + returned("%(error)s::text")
        else:
            update = (
                "UPDATE work_items w SET status = 'failed', completion_status = 'failed',"
                " error = %(error)s, updated_at = swarm_now(), completed_at = swarm_now(),"
                " lease_expires_at = NULL"
            )
        sql = logged(update + HOLDER, "fail")
        return self._run(
            lambda cur, retrying: self._held(
                cur,
                sql,
                params,
                retrying,
                lambda i: i.error is not None and i.error.startswith(error) and not i.held,
            )
        )

    def release(self, work_id: str, agent_id: str | None = None) -> WorkItem:
        params = {"id": check_id(work_id, "work id"), "by": _agent(agent_id)}
        sql = logged(
            "UPDATE work_items w SET status = 'pending', agent_id = NULL, progress = 0,"
            " claimed_at = NULL, updated_at = swarm_now(), lease_expires_at = NULL" + HOLDER,
            "release",
        )
        return self._run(
            lambda cur, retrying: self._held(
                cur, sql, params, retrying, lambda i: i.status == WorkStatus.PENDING
            )
        )

    def release_agent(self, agent_id: str) -> list[WorkItem]:
        check_id(agent_id, "agent id")
        sql = logged(
            "UPDATE work_items w SET "
            + returned("'agent ' || %(by)s || ' died while holding the item'")
            + f" WHERE w.agent_id = %(by)s AND w.status IN {HELD}",
            "release_agent",
        )

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[WorkItem]:
            cur.execute(sql, {"by": agent_id})
            released = [WorkItem(*row) for row in cur.fetchall()]
            if released:
                cur.execute("SELECT pg_notify(%s, '')", (self.channel,))
            return released

        return self._run(work)

    def get(self, work_id: str) -> WorkItem:
        check_id(work_id, "work id")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> WorkItem:
            cur.execute(f"SELECT {COLS} FROM work_items WHERE work_item_id = %s", (work_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"work item {work_id} not found")
            return WorkItem(*row)

        return self._run(work)

    def list_work(self, include_terminal: bool = True) -> list[WorkItem]:
        where = "" if include_terminal else f" WHERE status IN {LIVE}"

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[WorkItem]:
            cur.execute(f"SELECT {COLS} FROM work_items{where} ORDER BY {LIST_ORDER}")
            return [WorkItem(*row) for row in cur.fetchall()]

        return self._run(work)

    def sweep(self) -> list[WorkItem]:
        """Expire leases now; when several supervisors share the schema, whichever
        holds its advisory lock does it and the others skip."""

        def attempt(retrying: bool) -> list[WorkItem]:
            with self._pool.connection() as conn:
                row = conn.execute(SWEEP_TRY_LOCK, (SWEEP_LOCK,)).fetchone()
                if not row or not row[0]:
                    return []
                try:
                    with conn.transaction():
                        return [WorkItem(*r) for r in conn.execute(EXPIRE).fetchall()]
                finally:
                    conn.execute(SWEEP_UNLOCK, (SWEEP_LOCK,))

        return self._retrying(attempt)

    def compact(self) -> int:
        """Nothing to compact: PostgreSQL reclaims space itself (autovacuum)."""
        return 0

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Sleep until work is added (NOTIFY) or ``timeout`` passes."""
        if stop.is_set():
            return
        try:
            if self._listener is None or self._listener.closed:
                self._listener = self._connect(autocommit=True)
                self._listener.execute(f"LISTEN {self.channel}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                break
        except (psycopg.Error, StoreError):
            self._listener = None
            stop.wait(timeout)

    def close(self) -> None:
        self._pool.close()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _agent(agent_id: str | None) -> str | None:
    return check_id(agent_id, "agent id") if agent_id is not None else None


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


def _connection_error(where: str, exc: psycopg.OperationalError) -> StoreError | Timeout:
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if "timeout" in reason.lower():
        return Timeout(f"cannot connect to PostgreSQL at {where}: {reason}")
    return StoreError(f"cannot connect to PostgreSQL at {where}: {reason}")
