"""Named records of the file store: one JSON file in the store directory, read and
rewritten (atomically: temp file, rename) under the store's own flock, so a claim is
decided by one process at a time on every host sharing the directory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import orjson

from orchestrator.errors import Conflict, NotFound, StoreError
from orchestrator.files import write_atomic
from orchestrator.store.named import NamedRecord, check_name

T = TypeVar("T")
Table = dict[str, dict[str, dict[str, Any]]]  # namespace -> key -> record


class FileNamedRecords:
    """Mixed into FileStore, whose transaction, path and clock it uses."""

    NAMED = "named_records.json"
    NAMED_LOG = "named_records.log.jsonl"  # every change, appended: the operation log
    path: str
    durability: str
    clock: Callable[[], float]
    _transaction: Callable[[], AbstractContextManager[Any]]

    @contextmanager
    def _named(self, change: dict[str, str] | None = None) -> Iterator[Table]:
        """The table, under the lock; written back (and ``change`` logged) if changed."""
        file = os.path.join(self.path, self.NAMED)
        # The store's transaction: the lock held, and the store made or checked.
        with self._transaction():
            try:
                with open(file, "rb") as handle:
                    table: Table = orjson.loads(handle.read() or b"{}")
            except FileNotFoundError:
                table = {}
            except orjson.JSONDecodeError as exc:
                raise StoreError(
                    f"{file} is damaged ({exc}); restore it or delete it to forget"
                    " every named record"
                ) from None
            before = orjson.dumps(table)
            yield table
            if orjson.dumps(table) != before:  # readable with jq, as the snapshots
                pretty = orjson.dumps(table, option=orjson.OPT_INDENT_2)
                write_atomic(file, pretty, fsync=self.durability == "fsync")
                self._log_change(change)

    def _log_change(self, change: dict[str, str] | None) -> None:
        if change is None:
            return
        line = orjson.dumps({"ts": self.clock(), **change}, option=orjson.OPT_APPEND_NEWLINE)
        log = os.path.join(self.path, self.NAMED_LOG)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def claim_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        check_name(namespace, key)
        with self._named(_change("claim", namespace, key)) as table:
            records = table.setdefault(namespace, {})
            if key in records:
                raise Conflict(f"{namespace} {key!r} is taken")
            now = self.clock()
            record = NamedRecord(namespace, key, dict(value), now, now)
            records[key] = record.to_dict()
            return record

    def update_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        check_name(namespace, key)
        with self._named(_change("update", namespace, key)) as table:
            old = _found(table, namespace, key)
            record = NamedRecord(namespace, key, dict(value), old.created_at, self.clock())
            table[namespace][key] = record.to_dict()
            return record

    def get_record(self, namespace: str, key: str) -> NamedRecord:
        check_name(namespace, key)
        with self._named() as table:
            return _found(table, namespace, key)

    def list_records(self, namespace: str) -> list[NamedRecord]:
        check_name(namespace, "x")
        with self._named() as table:
            records = table.get(namespace, {})
            return [NamedRecord.from_dict(records[key]) for key in sorted(records)]

    def drop_record(self, namespace: str, key: str) -> NamedRecord:
        check_name(namespace, key)
        with self._named(_change("drop", namespace, key)) as table:
            record = _found(table, namespace, key)
            del table[namespace][key]
            if not table[namespace]:
                del table[namespace]
            return record


def _change(op: str, namespace: str, key: str) -> dict[str, str]:
    return {"op": f"record.{op}", "namespace": namespace, "key": key}


def _found(table: Table, namespace: str, key: str) -> NamedRecord:
    raw = table.get(namespace, {}).get(key)
    if raw is None:
        raise NotFound(f"{namespace} {key!r} not found")
    return NamedRecord.from_dict(raw)
