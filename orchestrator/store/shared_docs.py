"""Shared documents and the ledger: what swarm-wide limits and budgets keep in the store.

The store does not know what a limit is. It offers one atomic step over named JSON
documents: read them, let the caller's ``change`` function modify them in place with
the store's time, write back what changed and, in the same step, append a ledger
entry. The file store does it under its lock (``limits.json`` and ``ledger.jsonl``
beside the journal); the PostgreSQL store in one transaction that locks the rows
(``shared_docs``, ``ledger``: migration 0006). The rules live above, in
``orchestrator.limits``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson

from orchestrator.errors import StorageFull, StoreError
from orchestrator.files import write_atomic

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
Docs = dict[str, dict[str, Any]]
Change = Callable[[Docs, float], T]


class SharedDocs(Protocol):
    def update_shared(
        self, names: Sequence[str], change: Change[T], ledger: dict[str, Any] | None = None
    ) -> T:
        """Atomically: give ``change`` the documents ``names`` (empty dicts when new)
        and the store's time; store what it changed; append ``ledger`` (if any) with
        ``ts`` set to that time. Returns what ``change`` returned."""
        ...

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Ledger entries with ``ts >= since``, oldest first."""
        ...


class FileSharedDocs:
    """The file store's part (mixed into ``FileStore``): side files under its lock."""

    LIMITS = "limits.json"
    LEDGER = "ledger.jsonl"
    path: str
    clock: Callable[[], float]
    durability: str

    def _transaction(self) -> Any:  # FileStore's: holds the flock
        raise NotImplementedError

    def update_shared(
        self, names: Sequence[str], change: Change[T], ledger: dict[str, Any] | None = None
    ) -> T:
        with self._transaction():
            path = os.path.join(self.path, self.LIMITS)
            stored = _read_json(path)
            docs = {name: copy.deepcopy(stored.get(name, {})) for name in names}
            now = self.clock()
            result = change(docs, now)
            fsync = self.durability == "fsync"
            try:
                if any(docs[name] != stored.get(name, {}) for name in names):
                    stored.update(docs)
                    write_atomic(path, orjson.dumps(stored), fsync=fsync)
                if ledger is not None:
                    line = orjson.dumps(ledger | {"ts": now}) + b"\n"
                    with open(os.path.join(self.path, self.LEDGER), "ab") as fh:
                        fh.write(line)
                        if fsync:
                            fh.flush()
                            os.fsync(fh.fileno())
            except OSError as exc:
                raise _write_error(path, exc) from None
            return result

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        path = os.path.join(self.path, self.LEDGER)
        try:
            with open(path, "rb") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line torn by a crash: that call is not counted
            if isinstance(entry, dict) and float(entry.get("ts", 0.0)) >= since:
                entries.append(entry)
        return entries


def _read_json(path: str) -> Docs:
    try:
        with open(path, "rb") as fh:
            data = orjson.loads(fh.read())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError:
        # Limits state is soft: a damaged file starts the buckets afresh (full).
        return {}
    return data if isinstance(data, dict) else {}


def _write_error(path: str, exc: OSError) -> StoreError:
    if exc.errno in (28, 122):  # ENOSPC, EDQUOT
        return StorageFull(f"no space left for {path}: the limits state was not recorded")
    return StoreError(f"cannot write {path}: {exc.strerror}")


# -- PostgreSQL ----------------------------------------------------------------------

CREATE_ROWS = (
    "INSERT INTO shared_docs (name) SELECT unnest(%s::text[]) ON CONFLICT (name) DO NOTHING"
)
# Locked in name order, so two updates of overlapping names cannot deadlock.
LOCK_ROWS = (
    "SELECT name, doc, extract(epoch FROM clock_timestamp())::double precision"
    " FROM shared_docs WHERE name = ANY(%s) ORDER BY name FOR UPDATE"
)


class PgSharedDocs:
    """The PostgreSQL store's part (mixed into ``PostgresStore``)."""

    def _run(self, work: Callable[[psycopg.Cursor[Any], bool], T]) -> T:  # PostgresStore's
        raise NotImplementedError

    def update_shared(
        self, names: Sequence[str], change: Change[T], ledger: dict[str, Any] | None = None
    ) -> T:
        from psycopg.types.json import Jsonb

        wanted = sorted(set(names))

        def work(cur: psycopg.Cursor[Any], retrying: bool) -> T:
            cur.execute(CREATE_ROWS, (wanted,))
            cur.execute(LOCK_ROWS, (wanted,))
            rows = cur.fetchall()
            stored = {name: doc for name, doc, _ in rows}
            now = float(rows[0][2]) if rows else 0.0
            if not rows:
                cur.execute("SELECT extract(epoch FROM clock_timestamp())::double precision")
                now = float(cur.fetchone()[0])  # type: ignore[index]
            docs = {name: copy.deepcopy(stored.get(name, {})) for name in wanted}
            result = change(docs, now)
            changed = [(Jsonb(docs[n]), n) for n in wanted if docs[n] != stored.get(n, {})]
            if changed:
                cur.executemany("UPDATE shared_docs SET doc = %s WHERE name = %s", changed)
            if ledger is not None:
                cur.execute(
                    "INSERT INTO ledger (ts, entry) VALUES (%s, %s)",
                    (now, Jsonb(ledger | {"ts": now})),
                )
            return result

        return self._run(work)

    def ledger(self, since: float = 0.0) -> list[dict[str, Any]]:
        def work(cur: psycopg.Cursor[Any], retrying: bool) -> list[dict[str, Any]]:
            cur.execute("SELECT entry FROM ledger WHERE ts >= %s ORDER BY seq", (since,))
            return [row[0] for row in cur.fetchall()]

        return self._run(work)
