"""Where scheduled tasks record their runs, shared by every scheduler of one store.

A task runs only after its scheduler *claims* the period: one atomic step that checks
that the task is due and moves its ``next_due`` forward. However many supervisors
share the store, one of them wins each period; the others see the new ``next_due``.
The file store keeps the rows in ``maintenance.json`` beside its journal, under a lock
file of its own; PostgreSQL in the ``maintenance_runs`` table of the store's schema
(migration 0008), so two swarms in two schemas of one database do not share periods.
Times are the caller's clock (epoch seconds), which tests inject.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import orjson

from orchestrator.errors import StoreError
from orchestrator.files import write_atomic
from orchestrator.locations import is_url

logger = logging.getLogger(__name__)

RUNNING = "running"


@dataclass
class TaskRun:
    """The last run of one task and when the next one is due."""

    task: str
    next_due: float
    period_s: float | None = None  # the period in force (adaptive tasks change it)
    last_started: float | None = None
    last_finished: float | None = None
    owner: str | None = None  # who ran it last: host:pid
    outcome: str | None = None  # ok | error | running
    summary: str | None = None
    runs: int = 0


class ScheduleLedger(Protocol):
    def ensure(self, task: str, first_due: float, period_s: float | None) -> None:
        """Create the task's row when it has none (due at ``first_due``)."""
        ...

    def claim(
        self,
        task: str,
        now: float,
        next_due: float,
        owner: str,
        period_s: float | None = None,
        force: bool = False,
    ) -> bool:
        """Take this period of ``task`` if it is due at ``now`` (or ``force``): move its
        ``next_due`` to ``next_due`` and mark it running. False: not due, or taken."""
        ...

    def finish(
        self,
        task: str,
        outcome: str,
        summary: str,
        finished_at: float,
        next_due: float | None = None,
        period_s: float | None = None,
    ) -> None:
        """Record how the run ended; an adaptive task may move ``next_due`` again."""
        ...

    def runs(self) -> dict[str, TaskRun]: ...

    def close(self) -> None: ...


def open_ledger(target: str | os.PathLike[str], schema: str = "swarmsh") -> ScheduleLedger:
    """The ledger of the store at ``target`` (a directory or a PostgreSQL URL)."""
    if is_url(target):
        return PgLedger(str(target), schema)
    return FileLedger(Path(target))


class FileLedger:
    FILE = "maintenance.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / self.FILE

    @contextmanager
    def _locked(self) -> Iterator[dict[str, TaskRun]]:
        """The rows, under the ledger's lock; what the block leaves in the dict is
        written back atomically (a crash leaves the old file or the new, never half)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / "maintenance.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(
                f"cannot open the maintenance ledger in {self.folder}: {exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            rows = self._read()
            before = {name: asdict(row) for name, row in rows.items()}
            yield rows
            after = {name: asdict(row) for name, row in rows.items()}
            if after != before:
                write_atomic(str(self.path), orjson.dumps(after, option=orjson.OPT_INDENT_2))
        finally:
            os.close(fd)

    def _read(self) -> dict[str, TaskRun]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            # Only run times are lost: start the schedule afresh rather than stop.
            logger.warning("%s is unreadable (%s); the schedule starts afresh", self.path, exc)
            return {}
        known = {f.name for f in fields(TaskRun)}
        rows: dict[str, TaskRun] = {}
        if isinstance(data, dict):
            for name, row in data.items():
                if isinstance(row, dict) and "next_due" in row:
                    rows[name] = TaskRun(**{k: v for k, v in row.items() if k in known})
        return rows

    def ensure(self, task: str, first_due: float, period_s: float | None) -> None:
        with self._locked() as rows:
            if task not in rows:
                rows[task] = TaskRun(task, first_due, period_s)

    def claim(
        self,
        task: str,
        now: float,
        next_due: float,
        owner: str,
        period_s: float | None = None,
        force: bool = False,
    ) -> bool:
        with self._locked() as rows:
            row = rows.get(task)
            if row is None:
                if not force:
                    return False
                row = rows[task] = TaskRun(task, next_due, period_s)
            elif row.next_due > now and not force:
                return False
            row.next_due = next_due
            row.period_s = period_s if period_s is not None else row.period_s
            row.last_started, row.owner, row.outcome = now, owner, RUNNING
            row.runs += 1
            return True

    def finish(
        self,
        task: str,
        outcome: str,
        summary: str,
        finished_at: float,
        next_due: float | None = None,
        period_s: float | None = None,
    ) -> None:
        with self._locked() as rows:
            row = rows.get(task)
            if row is None:
                return
            row.outcome, row.summary, row.last_finished = outcome, summary, finished_at
            if next_due is not None:
                row.next_due = next_due
            if period_s is not None:
                row.period_s = period_s

    def runs(self) -> dict[str, TaskRun]:
        return self._read()

    def close(self) -> None:
        pass


_COLUMNS = ", ".join(f.name for f in fields(TaskRun))


class PgLedger:
    def __init__(self, dsn: str, schema: str) -> None:
        from orchestrator.store.pg_sql import SCHEMA_RE

        if not SCHEMA_RE.match(schema):
            raise StoreError(f"schema {schema!r}: use lowercase letters, digits and _")
        self.dsn, self.schema = dsn, schema
        self._conn: Any = None
        self._connection()

    def _connection(self) -> Any:
        """The ledger's own connection, (re)opened on demand: a lost one costs a tick."""
        import psycopg

        from orchestrator.store.pg_schema import apply_migrations

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    options=f"-c search_path={self.schema}",
                    application_name=f"swarmsh-maintenance:{self.schema}",
                    connect_timeout=10,
                )
            except psycopg.OperationalError as exc:
                text = str(exc).strip()
                first = text.splitlines()[0] if text else type(exc).__name__
                raise StoreError(f"cannot reach PostgreSQL for maintenance: {first}") from None
            apply_migrations(self._conn, self.schema, self.schema)
        return self._conn

    def _execute(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        import psycopg

        conn = self._connection()
        try:
            with conn.transaction():
                cursor = conn.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conn.close()
            raise StoreError(f"maintenance ledger: {str(exc).strip() or exc}") from None

    def ensure(self, task: str, first_due: float, period_s: float | None) -> None:
        self._execute(
            "INSERT INTO maintenance_runs (task, next_due, period_s)"
            " VALUES (%(task)s, %(due)s, %(period)s) ON CONFLICT (task) DO NOTHING",
            {"task": task, "due": first_due, "period": period_s},
        )

    def claim(
        self,
        task: str,
        now: float,
        next_due: float,
        owner: str,
        period_s: float | None = None,
        force: bool = False,
    ) -> bool:
        # One statement: of several supervisors updating the same row, the row lock
        # makes the later ones re-check next_due <= now against the winner's update.
        rows = self._execute(
            "INSERT INTO maintenance_runs"
            " (task, next_due, period_s, last_started, owner, outcome, runs)"
            " SELECT %(task)s, %(due)s, %(period)s, %(now)s, %(owner)s, 'running', 1"
            " WHERE %(force)s"
            " ON CONFLICT (task) DO NOTHING RETURNING task",
            {
                "task": task,
                "due": next_due,
                "period": period_s,
                "now": now,
                "owner": owner,
                "force": force,
            },
        )
        if rows:
            return True
        rows = self._execute(
            "UPDATE maintenance_runs SET next_due = %(due)s,"
            " period_s = coalesce(%(period)s, period_s), last_started = %(now)s,"
            " owner = %(owner)s, outcome = 'running', runs = runs + 1"
            " WHERE task = %(task)s AND (next_due <= %(now)s OR %(force)s) RETURNING task",
            {
                "task": task,
                "due": next_due,
                "period": period_s,
                "now": now,
                "owner": owner,
                "force": force,
            },
        )
        return bool(rows)

    def finish(
        self,
        task: str,
        outcome: str,
        summary: str,
        finished_at: float,
        next_due: float | None = None,
        period_s: float | None = None,
    ) -> None:
        self._execute(
            "UPDATE maintenance_runs SET outcome = %(outcome)s, summary = %(summary)s,"
            " last_finished = %(at)s, next_due = coalesce(%(due)s, next_due),"
            " period_s = coalesce(%(period)s, period_s) WHERE task = %(task)s",
            {
                "task": task,
                "outcome": outcome,
                "summary": summary,
                "at": finished_at,
                "due": next_due,
                "period": period_s,
            },
        )

    def runs(self) -> dict[str, TaskRun]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM maintenance_runs ORDER BY task", {})
        return {row[0]: TaskRun(*row) for row in rows}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
