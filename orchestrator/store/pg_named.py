"""Named records of the PostgreSQL store: the ``named_records`` table (migration
0007), whose primary key decides between concurrent claims of one name. Each change
is also logged in ``events``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from orchestrator.errors import Conflict, NotFound
from orchestrator.store.named import NamedRecord, check_name

T = TypeVar("T")
_COLS = "namespace, key, value, created_at, updated_at"


class PgNamedRecords:
    """Mixed into PostgresStore, whose pool and retry loop it uses."""

    _pool: ConnectionPool[Any]

    def _retrying(self, action: Callable[[bool], T]) -> T:
        raise NotImplementedError  # PostgresStore's

    def _named(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:
        def attempt(retrying: bool) -> T:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                return work(cur, retrying)

        return self._retrying(attempt)

    @staticmethod
    def _log(cur: psycopg.Cursor[Any], op: str, namespace: str, key: str) -> None:
        cur.execute(
            "INSERT INTO events (ts, op, status) VALUES (swarm_now(), %s, %s)",
            (op, f"{namespace}:{key}"[:500]),
        )

    def claim_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        check_name(namespace, key)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> NamedRecord:
            cur.execute(
                f"INSERT INTO named_records ({_COLS}) VALUES (%s, %s, %s, swarm_now(),"
                f" swarm_now()) ON CONFLICT DO NOTHING RETURNING {_COLS}",
                (namespace, key, Jsonb(value)),
            )
            row = cur.fetchone()
            if row is None:
                present = _select(cur, namespace, key)
                if retrying and present is not None and present.value == value:
                    return present  # our first try committed before the connection dropped
                raise Conflict(f"{namespace} {key!r} is taken")
            self._log(cur, "record.claim", namespace, key)
            return NamedRecord(*row)

        return self._named(work)

    def update_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        check_name(namespace, key)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> NamedRecord:
            cur.execute(
                "UPDATE named_records SET value = %s, updated_at = swarm_now()"
                f" WHERE namespace = %s AND key = %s RETURNING {_COLS}",
                (Jsonb(value), namespace, key),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"{namespace} {key!r} not found")
            self._log(cur, "record.update", namespace, key)
            return NamedRecord(*row)

        return self._named(work)

    def get_record(self, namespace: str, key: str) -> NamedRecord:
        check_name(namespace, key)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> NamedRecord:
            found = _select(cur, namespace, key)
            if found is None:
                raise NotFound(f"{namespace} {key!r} not found")
            return found

        return self._named(work)

    def list_records(self, namespace: str) -> list[NamedRecord]:
        check_name(namespace, "x")

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[NamedRecord]:
            cur.execute(
                f"SELECT {_COLS} FROM named_records WHERE namespace = %s ORDER BY key",
                (namespace,),
            )
            return [NamedRecord(*row) for row in cur.fetchall()]

        return self._named(work)

    def drop_record(self, namespace: str, key: str) -> NamedRecord:
        check_name(namespace, key)

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> NamedRecord:
            cur.execute(
                f"DELETE FROM named_records WHERE namespace = %s AND key = %s RETURNING {_COLS}",
                (namespace, key),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"{namespace} {key!r} not found")
            self._log(cur, "record.drop", namespace, key)
            return NamedRecord(*row)

        return self._named(work)


def _select(cur: psycopg.Cursor[Any], namespace: str, key: str) -> NamedRecord | None:
    cur.execute(
        f"SELECT {_COLS} FROM named_records WHERE namespace = %s AND key = %s",
        (namespace, key),
    )
    row = cur.fetchone()
    return NamedRecord(*row) if row is not None else None
