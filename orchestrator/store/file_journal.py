"""The file store's journal and its index: a transaction's start and end on the database
(``sql_state``), bringing the database up to the journal (the rest of a record a killed
writer appended; the whole journal, from the snapshot, when the two do not match), and
the switch to a new generation (mixed into ``FileStore``)."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from orchestrator.errors import InvalidArgument, StorageFull, StoreError
from orchestrator.files import write_atomic
from orchestrator.store import integrity, journal
from orchestrator.store.snapshot import (
    NotAnArray,
    Unsplittable,
    checked_agent,
    checked_item,
    elements,
)
from orchestrator.store.sql_state import Position, SqlState
from orchestrator.store.views import adopt_legacy_snapshots

logger = logging.getLogger(__name__)

_MARKERS = frozenset(("generation", "sealed"))


class _Reopen(Exception):
    """The database file this process has open is no longer the store's."""


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite found its file damaged or not a database (then it is rebuilt)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


# Records applied together (SqlState.apply_events): an item's claim and completion are
# usually a few records apart, so a small batch gets what coalescing saves.
_BATCH = 64


class FileJournal:
    """Uses FileStore's paths, descriptor and offsets; fills its ``_state``."""

    JOURNAL: str
    STATE: str
    WORK: str
    AGENTS: str
    HISTORY: str
    LEGACY: tuple[tuple[str, str], ...]
    path: str
    durability: str
    compact_bytes: int
    clock: Callable[[], float]
    dropped_records: int
    _state: SqlState | None
    _fd: int
    _inode: int
    _offset: int
    _generation: int
    _compact_at: int
    _sealed: bool
    _broken: sqlite3.Error | None
    _orphans: list[SqlState]
    _synced: Position | None
    _ready: bool  # a transaction found the store's files sound
    _marks: str

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- the database: a transaction's start and end (the lock held) ------------------

    def _begin(self) -> SqlState:
        """Start a transaction on the database, brought up to the journal."""
        state = self._state
        if state is not None and state.pid != os.getpid():
            # Inherited through a fork: SQLite's connection is the parent's to use (and
            # to close): kept, untouched, for as long as this copy of the store lives.
            self._orphans.append(state)
            state = self._state = None
        try:
            if state is None:
                state = self._state = self._open_state()
            state.begin()
        except sqlite3.Error as exc:
            raise self._database_error(exc) from None
        self._broken = None
        try:
            self._synced = state.position()
            self._sync(state, self._synced)
        except _Reopen:
            state.rollback()
            state.db.close()
            self._state = None
            return self._begin()
        except sqlite3.Error as exc:
            self._ready = False
            state.rollback()
            raise self._database_error(exc) from None
        except BaseException:
            self._ready = False
            state.rollback()
            raise
        self._ready = True
        return state

    def _end(self, state: SqlState, ok: bool) -> None:
        """Commit, with the journal position the database now reaches; or roll back, and
        the next transaction applies from the journal whatever this one had recorded."""
        if not ok:
            state.rollback()
            return
        try:
            mtime = os.fstat(self._fd).st_mtime_ns
            position = Position(self._generation, self._offset, self._inode, mtime, self._marks)
            if position != self._synced:
                state.set_position(position)
            state.commit()
        except sqlite3.Error as exc:
            state.rollback()
            # What the transaction did is in the journal, the source of truth.
            logger.warning(
                "%s: could not update the index (%s); it catches up later", self.path, exc
            )
        except BaseException:
            state.rollback()  # never leave SQLite's write lock held past the flock
            raise

    def _open_state(self) -> SqlState:
        path = self._file(self.STATE)
        try:
            return SqlState(path, self.durability)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            logger.warning("%s is damaged (%s): rebuilding it from the journal", path, exc)
            self._discard_state()
            return SqlState(path, self.durability)

    def _discard_state(self) -> None:
        """Close the database and delete it (damaged): the next transaction builds it
        again. Only the file this process had open: another may have replaced it."""
        state, self._state = self._state, None
        if state is not None:
            state.db.close()
            if not state.is_current():
                return
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self._file(self.STATE) + suffix)
            except FileNotFoundError:
                pass

    def _snapshot_marks(self) -> str:
        """The snapshots' identity, size and time of change (``Position``)."""
        marks = []
        for name in (self.WORK, self.AGENTS):
            try:
                found = os.stat(self._file(name))
            except FileNotFoundError:
                marks.append("-")
            else:
                marks.append(f"{found.st_ino}:{found.st_size}:{found.st_mtime_ns}")
        return " ".join(marks)

    def _database_error(self, exc: sqlite3.Error) -> StoreError:
        path = self._file(self.STATE)
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
            return StorageFull(f"no space left on the device of {self.path}: {exc}")
        if _damaged(exc):
            self._discard_state()  # the next operation rebuilds it from the journal
            return StoreError(f"{path} was damaged ({exc}) and is rebuilt; retry")
        return StoreError(f"cannot use {path}: {exc}")

    def _sync(self, state: SqlState, position: Position | None) -> None:
        """Bring the database up to the journal: apply what a writer killed before its
        commit left; rebuild it when it does not match the journal file."""
        if position is None:
            self._load()
            return
        if position.inode != self._inode or self._fd < 0:
            self._open_journal()  # first use, or another process started a generation
            if position.inode != self._inode:
                self._load()
                return
            self._set_compact_at()
        journal = os.fstat(self._fd)
        if (
            journal.st_size < position.offset
            or (journal.st_size == position.offset and journal.st_mtime_ns != position.mtime_ns)
            or (not self._ready and self._snapshot_marks() != position.snapshots)
        ):
            self._load()  # a file changed under the database: read the store from its files
            return
        self._marks = position.snapshots
        self._generation = position.generation
        self._offset = position.offset
        if journal.st_size == position.offset:
            integrity.check_linked(self.path, self._fd, journal.st_nlink)
            return
        if not state.is_current():
            # Others wrote what this database lacks: it was deleted and made again
            # (damaged) under this connection. Move to the file they use.
            raise _Reopen
        self._read_new()  # what a writer killed before its commit appended
        if self._sealed:
            self._follow_generation()

    def _read_new(self) -> None:
        """Apply the journal from ``_offset`` to its end (the lock held): a tail a writer
        killed before its commit left, a new generation, or the whole journal."""
        stat = os.fstat(self._fd)
        integrity.check_linked(self.path, self._fd, stat.st_nlink)
        size = stat.st_size
        if size <= self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        pos = start = read = 0
        events: list[dict[str, Any]] = []  # applied together, up to a marker (SqlState)
        # A rebuild runs this for every record: keep the loop free of calls it can skip.
        decode, find, apply_events = journal.decode, data.find, self._state_apply()
        try:
            while (end := find(b"\n", pos)) >= 0:
                read = end + 1
                event = decode(data[pos:read])
                if event is None:
                    self.dropped_records += 1
                    logger.warning(
                        "%s: skipped a corrupt record at byte %d (checksum mismatch)",
                        self._file(self.JOURNAL),
                        self._offset + pos,
                    )
                elif event["op"] in _MARKERS:
                    apply_events(events)
                    events.clear()
                    start = read
                    self._marker(event)
                else:
                    events.append(event)
                    if len(events) == _BATCH:  # bounded: a whole journal is not held parsed
                        apply_events(events)
                        events.clear()
                        start = read
                pos = read
            apply_events(events)
        except (TypeError, ValueError, KeyError) as exc:
            raise StoreError(
                f"{self._file(self.JOURNAL)}: a record between bytes {self._offset + start} and"
                f" {self._offset + read} does not fit this version of swarmsh ({exc});"
                " upgrade swarmsh"
            ) from None
        self._offset += pos
        if pos < len(data):
            # Writers hold the lock, so an unterminated tail is a write torn by a crash.
            self.dropped_records += 1
            logger.warning(
                "%s: cut a torn record of %d bytes at byte %d (left by a crash mid-write)",
                self._file(self.JOURNAL),
                len(data) - pos,
                self._offset,
            )
            os.ftruncate(self._fd, self._offset)

    def _state_apply(self) -> Callable[[list[dict[str, Any]]], None]:
        state = self._state
        assert state is not None
        return state.apply_events

    def _marker(self, event: dict[str, Any]) -> None:
        """A generation header (purge what the snapshot archived) or a seal."""
        if event["op"] == "generation":
            assert self._state is not None
            self._generation = int(event["gen"])
            self._state.purge(float(event.get("purge_before", 0.0)))
        else:
            self._sealed = True

    def _open_journal(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        path = self._file(self.JOURNAL)
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            integrity.require_fresh(self.path)
            self._write_header(1, purge_before=0.0)
            # Made after the first header: a history folder means a journal existed.
            os.makedirs(self._file(self.HISTORY), mode=0o755, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        self._inode = os.fstat(self._fd).st_ino
        self._offset = 0

    def _write_header(self, generation: int, purge_before: float) -> None:
        header = {"op": "generation", "gen": generation, "purge_before": purge_before}
        header["ts"] = self.clock()
        fsync = self.durability == "fsync"
        write_atomic(self._file(self.JOURNAL), journal.encode(header), fsync=fsync)

    def _load(self, split: bool = True) -> None:
        """Rebuild the state: snapshot, then the whole current journal."""
        adopt_legacy_snapshots(self.path, self.LEGACY)
        state = self._state
        assert state is not None
        state.clear()
        self._synced = None  # the position row went with the rest

        def load_items(raw: object) -> None:
            item = checked_item(raw)
            holder = state.keyed(item.key)
            if holder is not None:
                raise ValueError(f"key {item.key!r} is also held by {holder.work_item_id}")
            state.put_item(item)

        def load_agents(raw: object) -> None:
            state.put_agent(checked_agent(raw))

        try:
            for name, load in ((self.WORK, load_items), (self.AGENTS, load_agents)):
                for index, raw in enumerate(self._read_snapshot(name, split)):
                    try:
                        load(raw)
                    # A value SQLite cannot store (a list for a team) is a bad record too.
                    except (
                        TypeError,
                        ValueError,
                        InvalidArgument,
                        sqlite3.InterfaceError,
                        sqlite3.ProgrammingError,
                    ) as exc:
                        raise StoreError(
                            f"{self._file(name)}: record {index} is not valid ({exc});"
                            " restore the file from a backup"
                        ) from None
        except Unsplittable:  # laid out by hand: start over, parsing each file whole
            self._load(split=False)
            return
        self._open_journal()
        self._generation = 0
        self._read_new()
        integrity.check_generation(self.path, self._generation, self._fd)
        self._marks = self._snapshot_marks()
        self._set_compact_at()

    def _set_compact_at(self) -> None:
        """Compact when the journal reaches ``compact_bytes`` and twice the snapshot."""
        try:
            size = os.path.getsize(self._file(self.WORK))
        except FileNotFoundError:
            size = 0
        self._compact_at = max(self.compact_bytes, 2 * size)

    def _read_snapshot(self, name: str, split: bool) -> Iterator[Any]:
        path = self._file(name)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return
        try:
            yield from elements(data, split)
        except orjson.JSONDecodeError as exc:
            raise StoreError(
                f"{path} is not valid JSON ({exc}); restore it from a backup"
            ) from None
        except NotAnArray:
            raise StoreError(f"{path} must hold a JSON array") from None

    def _follow_generation(self) -> None:
        """Switch to the journal generation that replaced the sealed one.

        A seal without a new journal (the compacting process died in between) is
        ignored: records after it in the same file are as good as any.
        """
        self._sealed = False
        try:
            inode = os.stat(self._file(self.JOURNAL)).st_ino
        except FileNotFoundError:
            inode = -1
        if inode == self._inode:
            return
        before = self._generation
        if inode == -1:
            self._load()
            return
        self._open_journal()
        self._read_new()
        if self._generation != before + 1:
            self._load()  # missed a whole generation: start from the snapshot
        else:
            self._marks = self._snapshot_marks()
            self._set_compact_at()
