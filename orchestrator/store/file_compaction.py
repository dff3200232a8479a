"""Compaction of the file store: snapshot the live state, archive finished items, seal
the journal generation and start the next one (mixed into ``FileStore``)."""

from __future__ import annotations

import logging
import operator
import os
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import orjson

from orchestrator.errors import StoreError
from orchestrator.files import write_atomic
from orchestrator.store import journal
from orchestrator.store.locking import StoreLock
from orchestrator.store.sql_state import SqlState

logger = logging.getLogger(__name__)

_AGE_ORDER = operator.attrgetter("created_at", "work_item_id")


class FileCompaction:
    """Uses FileStore's transaction, journal descriptor and generation bookkeeping."""

    WORK: str
    AGENTS: str
    ARCHIVE: str
    HISTORY: str
    JOURNAL: str
    path: str
    durability: str
    archive_after_s: float
    compact_bytes: int
    clock: Callable[[], float]
    _state: SqlState | None
    _generation: int
    _offset: int
    _compact_at: int
    _sealed: bool
    _broken: sqlite3.Error | None
    _marks: str
    _snapshot_marks: Callable[[], str]
    _transaction: Callable[[], AbstractContextManager[SqlState]]
    _mutex: threading.Lock
    _lock: StoreLock
    _file: Callable[[str], str]
    _append: Callable[[bytes], None]
    _write_header: Callable[[int, float], None]
    _open_journal: Callable[[], None]
    _read_new: Callable[[], None]

    def compact(self) -> int:
        """Snapshot now and start a new journal generation, then give the disk back the
        room the archived items left in the database; return items archived."""
        with self._transaction() as state:
            if self._broken is not None:  # the database is behind the journal
                raise StoreError(f"cannot compact {self.path} now ({self._broken}); retry")
            archived, kept = self._compact(state)
        self._reclaim(archived / (archived + kept) if archived else 0.0)
        return archived

    def _reclaim(self, archived_share: float) -> None:
        """Rewriting the database cannot be done in a transaction, and holds the lock a
        while (0.16 s for the 60,000 items left of 100,000): only here, where an operator
        or a maintenance task asked for a compaction, never after an agent's operation."""
        with self._mutex:
            state = self._state
            if state is None or state.pid != os.getpid():
                return
            self._lock.acquire()
            try:
                freed = state.reclaim(archived_share)
            except sqlite3.Error as exc:  # a full disk: the database stays as it was
                logger.warning("could not give back the free room in %s (%s)", state.path, exc)
                state.rollback()
            else:
                if freed:
                    logger.info("gave back %d bytes of %s", freed, state.path)
            finally:
                self._lock.release()

    def _try_compact(self, state: SqlState) -> None:
        """Compact after an operation; a failure (a full disk) costs nothing but a warning:
        the operation is already in the journal, which stays the source of truth."""
        try:
            self._compact(state)
        except (OSError, StoreError, sqlite3.Error) as exc:
            logger.warning("could not compact %s (%s); will retry later", self.path, exc)
            # Items were purged for a generation that did not start: roll the database
            # back; the next transaction applies the operation from the journal.
            self._broken = exc if isinstance(exc, sqlite3.Error) else sqlite3.Error(str(exc))
            self._compact_at = self._offset * 2

    def _compact(self, state: SqlState) -> tuple[int, int]:
        """Return how many items were archived and how many stay."""
        fsync = self.durability == "fsync"
        now = self.clock()
        purge_before = now - self.archive_after_s
        archived = state.purge(purge_before)
        if archived:
            # Archive first: a crash before the snapshot only duplicates archive lines.
            lines = b"".join(orjson.dumps(item) + b"\n" for item in archived)
            with open(self._file(self.ARCHIVE), "ab") as fh:
                fh.write(lines)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        # Sorted by C-level keys (under the lock); indented, which lets every process
        # load it an item at a time (``snapshot.elements``) at a third of the memory.
        items = sorted(state.items.values(), key=_AGE_ORDER)
        snapshot = orjson.dumps(items, option=orjson.OPT_INDENT_2)
        write_atomic(self._file(self.WORK), snapshot, fsync=fsync)
        agents = orjson.dumps(list(state.agents.values()), option=orjson.OPT_INDENT_2)
        write_atomic(self._file(self.AGENTS), agents, fsync=fsync)
        self._marks = self._snapshot_marks()
        # Seal the finished generation (so other processes know to switch without a stat
        # per operation), keep it in the history, then swap in the new one.
        self._append(journal.encode({"op": "sealed", "ts": now, "next": self._generation + 1}))
        old = os.path.join(self.path, self.HISTORY, f"gen-{self._generation:06d}.jsonl")
        os.makedirs(os.path.dirname(old), mode=0o755, exist_ok=True)
        if os.path.exists(old):
            os.unlink(old)
        os.link(self._file(self.JOURNAL), old)
        self._write_header(self._generation + 1, purge_before)
        self._open_journal()
        self._sealed = False
        self._read_new()
        self._compact_at = max(self.compact_bytes, 2 * len(snapshot))
        logger.info(
            "compacted %s: generation %d, %d live items, %d archived",
            self.path,
            self._generation,
            len(items),
            len(archived),
        )
        return len(archived), len(items)
