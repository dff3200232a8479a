"""Reading the file store's journal: a process's catch-up on what others appended, the
load from the snapshots, and the switch to a new generation (mixed into ``FileStore``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from orchestrator.errors import InvalidArgument, StoreError
from orchestrator.files import write_atomic
from orchestrator.store import integrity, journal
from orchestrator.store.snapshot import (
    NotAnArray,
    Unsplittable,
    checked_agent,
    checked_item,
    elements,
)
from orchestrator.store.state import State
from orchestrator.store.views import adopt_legacy_snapshots

logger = logging.getLogger(__name__)

_MARKERS = frozenset(("generation", "sealed"))
# Records applied together (State.apply_events): an item's claim and completion are
# usually a few records apart, so a small batch gets what coalescing saves.
_BATCH = 64


class FileJournal:
    """Uses FileStore's paths, descriptor and offsets; fills its ``_state``."""

    JOURNAL: str
    WORK: str
    AGENTS: str
    HISTORY: str
    LEGACY: tuple[tuple[str, str], ...]
    path: str
    durability: str
    compact_bytes: int
    clock: Callable[[], float]
    dropped_records: int
    _state: State | None
    _fd: int
    _inode: int
    _offset: int
    _generation: int
    _compact_at: int
    _sealed: bool

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _catch_up_unlocked(self) -> None:
        self._read_new(locked=False)

    def _read_new(self, locked: bool) -> None:
        stat = os.fstat(self._fd)
        if locked:
            integrity.check_linked(self.path, self._fd, stat.st_nlink)
        size = stat.st_size
        if size <= self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        pos = start = read = 0
        events: list[dict[str, Any]] = []  # applied together, up to a marker (State)
        # Every process runs this for every record: keep the loop free of calls it can skip.
        decode, find, apply_events = journal.decode, data.find, self._state_apply()
        try:
            while (end := find(b"\n", pos)) >= 0:
                read = end + 1
                event = decode(data[pos:read])
                if event is None:
                    if not locked:
                        break  # decide under the lock, where no write can be in flight
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
        if locked and pos < len(data):
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
        state = State()
        self._state = state

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
                    except (TypeError, ValueError, InvalidArgument) as exc:
                        self._state = None
                        raise StoreError(
                            f"{self._file(name)}: record {index} is not valid ({exc});"
                            " restore the file from a backup"
                        ) from None
        except Unsplittable:  # laid out by hand: start over, parsing each file whole
            self._load(split=False)
            return
        self._open_journal()
        self._generation = 0
        self._read_new(locked=True)
        try:
            integrity.check_generation(self.path, self._generation, self._fd)
        except StoreError:
            self._state = None
            raise
        snapshot = self._file(self.WORK)
        size = os.path.getsize(snapshot) if os.path.exists(snapshot) else 0
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
            self._state = None
            raise StoreError(
                f"{path} is not valid JSON ({exc}); restore it from a backup"
            ) from None
        except NotAnArray:
            self._state = None
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
        self._read_new(locked=True)
        if self._generation != before + 1:
            self._load()  # missed a whole generation: start from the snapshot
        else:
            size = os.path.getsize(self._file(self.WORK))
            self._compact_at = max(self.compact_bytes, 2 * size)
