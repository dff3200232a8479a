"""The embedded store: a CRC-checked JSONL journal in one directory, one flock.

Layout of the store directory (default ``agent_coordination/``)::

    .lock               the flock every operation holds while it reads and appends
    .lock-line          the flock waiters for ``.lock`` queue on (``locking``)
    journal.jsonl       the current generation: a header record, then one record per
                        operation: a new item whole, a changed one as its changed fields
    work_snapshot.json  snapshot of the live work items at the start of this generation
    agents_snapshot.json  snapshot of the registered agents (both plain JSON arrays)
    state.sqlite        the state, an index of the files above (rebuilt from them when
                        missing or damaged)
    work_claims.json, agent_status.json, agents.json, coordination_log.json
                        SwarmSH's views, never read back (``views``)
    work_archive.jsonl  finished items moved out of the state at compaction, one per line
    journal/            earlier generations (the operation log is kept whole)

The state lives in ``state.sqlite`` (``sql_state``), shared by every process and
changed in place by the lock holder, so an operation costs the same whatever the number
of processes and of items. The journal stays the source of truth: each record is
appended before the database commits it, and the database says how far into the
journal it reaches (``file_journal`` applies what a killed writer left). Records set
values (whole versions, or the fields that changed: ``journal.item_record``), so
applying a record twice changes nothing: that makes a compaction interrupted between
its steps safe to finish or to redo.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

from orchestrator.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StorageFull,
    StoreError,
)
from orchestrator.ids import check_id
from orchestrator.records import ANY, Agent, ClaimFilter, WorkItem, WorkStatus, list_order
from orchestrator.store import journal, pipeline
from orchestrator.store import state as rules
from orchestrator.store.base import Enqueued
from orchestrator.store.file_choice import FileChosenWork
from orchestrator.store.file_compaction import FileCompaction
from orchestrator.store.file_journal import FileJournal
from orchestrator.store.file_named import FileNamedRecords
from orchestrator.store.file_pipeline import FilePipeline
from orchestrator.store.file_summary import FileSummary
from orchestrator.store.locking import StoreLock, flock_timeout_from_env
from orchestrator.store.shared_docs import FileSharedDocs
from orchestrator.store.sql_state import Position, SqlState, decode_item
from orchestrator.store.views import SwarmshViews

logger = logging.getLogger(__name__)

DURABILITIES = ("os", "fsync")


class FileStore(
    FileJournal,
    FileCompaction,
    FileChosenWork,
    FilePipeline,
    FileSummary,
    FileSharedDocs,
    FileNamedRecords,
):
    JOURNAL = "journal.jsonl"
    STATE = "state.sqlite"
    WORK = "work_snapshot.json"
    AGENTS = "agents_snapshot.json"
    LEGACY = (("work_claims.json", WORK), ("agents.json", AGENTS))  # before SwarmSH views
    ARCHIVE = "work_archive.jsonl"
    HISTORY = "journal"
    LOCK = ".lock"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "os",
        lease_s: float = 60.0,
        max_attempts: int = 3,
        archive_after_s: float = 3600.0,
        lock_timeout_s: float | None = None,
        compact_bytes: int = 4 << 20,
        clock: Callable[[], float] = time.time,
        views_interval_s: float | None = None,
    ) -> None:
        if durability not in DURABILITIES:
            raise InvalidArgument(f"durability {durability!r}: use 'os' or 'fsync'")
        self.path = os.fspath(path)
        self.durability = durability
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.archive_after_s = archive_after_s
        self.compact_bytes = compact_bytes
        self.clock = clock
        self.dropped_records = 0
        try:
            os.makedirs(self.path, mode=0o755, exist_ok=True)
            timeout = flock_timeout_from_env() if lock_timeout_s is None else lock_timeout_s
            self._lock = StoreLock(os.path.join(self.path, self.LOCK), timeout)
        except PermissionError as exc:
            raise PermissionDenied(
                f"cannot use store directory {self.path}: {exc.strerror}"
            ) from None
        except NotADirectoryError:
            raise StoreError(f"store path {self.path} is not a directory") from None
        self._mutex = threading.Lock()
        self._state: SqlState | None = None
        # Set when the transaction must be rolled back, not committed: the error that
        # left the database behind the journal.
        self._broken: sqlite3.Error | None = None
        self._synced: Position | None = None  # where the database was at its start
        self._ready = False
        self._marks = ""
        self._orphans: list[SqlState] = []  # connections inherited through a fork
        self._fd = -1
        self._inode = 0
        self._offset = 0
        self._generation = 0
        self._compact_at = compact_bytes
        self._expired: list[WorkItem] = []
        # Set when the journal read so far ends with a seal: another process compacted.
        self._sealed = False
        # SwarmSH's JSON files (None: not written); 0 writes them after every change.
        self._views = (
            None if views_interval_s is None else SwarmshViews(self.path, views_interval_s)
        )

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[SqlState]:
        with self._mutex:
            self._lock.acquire()
            try:
                state = self._begin()
                try:
                    self._expired = self._expire_leases(state)
                    if self._broken is not None:  # the expiries stand; the operation would
                        raise self._database_error(self._broken)  # be planned on stale rows
                    yield state
                    if self._broken is None:
                        if self._offset >= self._compact_at:
                            self._try_compact(state)
                        if self._views is not None:
                            self._refresh_views(self._views, state)
                except sqlite3.Error as exc:
                    self._end(state, ok=False)
                    raise self._database_error(exc) from None
                except BaseException:
                    self._end(state, ok=False)
                    raise
                self._end(state, ok=self._broken is None)
            finally:
                self._lock.release()

    def _commit(
        self,
        op: str,
        items: Sequence[WorkItem] = (),
        agents: Sequence[Agent] = (),
        gone: Sequence[str] = (),
        by: str | None = None,
    ) -> None:
        if self._broken is not None:
            # An earlier record of this transaction is in the journal but not in the
            # database: planned against it, this one could be wrong. Not recorded.
            raise self._database_error(self._broken)
        event: dict[str, Any] = {"op": op, "ts": self.clock()}
        state = self._state
        assert state is not None
        if items and state.children:  # children move with their parents, in this record
            items = [*items, *pipeline.settle(state, items, event["ts"])]
        if by is not None:
            event["by"] = by
        if items:
            event["items"] = self._item_records(state, items)
        if agents:
            event["agents"] = agents
        if gone:
            event["gone"] = gone
        self._append(journal.encode(event))
        try:
            for item in items:
                state.put_item(item)
            for agent in agents:
                state.put_agent(agent)
            for agent_id in gone:
                state.drop_agent(agent_id)
        except sqlite3.Error as exc:
            # Recorded in the journal, the source of truth: the operation stands. The
            # database is rolled back at the end of the transaction (nothing else runs
            # on it meanwhile) and catches up from the journal next time.
            self._broken = exc
            logger.warning("%s: could not apply an operation to the index: %s", self.path, exc)

    @staticmethod
    def _item_records(state: SqlState, items: Sequence[WorkItem]) -> list[Any]:
        """Each item whole if readers do not hold it yet, else its changed fields."""
        known = state.items
        written: dict[str, WorkItem] = {}
        records: list[Any] = []
        for item in items:
            work_id = item.work_item_id
            records.append(journal.item_record(written.get(work_id) or known.get(work_id), item))
            written[work_id] = item
        return records

    def _append(self, line: bytes) -> None:
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")
            if self.durability == "fsync":
                os.fdatasync(self._fd)
        except OSError as exc:
            # Cut whatever part of the record reached the file (the transaction is
            # rolled back: the database never saw it); a closing process leaves the
            # views as they are.
            self._ready = False
            try:
                os.ftruncate(self._fd, self._offset)
            except OSError:
                logger.warning("could not cut a partial record from %s", self._file(self.JOURNAL))
            else:
                with suppress(OSError):  # at worst the next operation rebuilds the database
                    self._restore_mtime()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(
                    f"no space left on the device of {self.path}: the operation was not recorded"
                ) from None
            raise StoreError(f"cannot write {self._file(self.JOURNAL)}: {exc.strerror}") from None
        self._offset += written

    def _restore_mtime(self) -> None:
        """After cutting a failed record: when the journal is again what the database
        recorded (this transaction appended nothing else), give it back the time of
        change recorded with it, or the next operation would take it for a file changed
        under the database and rebuild the database from the files."""
        synced = self._synced
        if synced is not None and (synced.inode, synced.offset) == (self._inode, self._offset):
            os.utime(self._fd, ns=(os.fstat(self._fd).st_atime_ns, synced.mtime_ns))

    def _expire_leases(self, state: SqlState) -> list[WorkItem]:
        now = self.clock()
        expired = [
            rules.returned(item, now, f"lease expired (held by {item.agent_id})", True)
            for item in state.expired(now)
        ]
        if expired:
            self._commit("expire", expired)
        return expired

    # -- agents ----------------------------------------------------------------------

    def register(self, agent: Agent) -> Agent:
        rules.check_agent(agent)
        with self._transaction() as state:
            now = self.clock()
            known = state.agents.get(agent.agent_id)
            since = known.registered_at if known else now
            record = replace(agent, registered_at=since, last_heartbeat=now)
            self._commit("register", agents=[record], by=agent.agent_id)
            return record

    def heartbeat(self, agent_id: str) -> int:
        check_id(agent_id, "agent id")
        with self._transaction() as state:
            agent = state.agents.get(agent_id)
            held = state.held_by(agent_id)
            if agent is None and not held:
                raise NotFound(f"agent {agent_id} not found")
            now = self.clock()
            agents = [replace(agent, last_heartbeat=now)] if agent else []
            self._commit("heartbeat", rules.extended(held, now, self.lease_s), agents, by=agent_id)
            return len(held)

    def deregister(self, agent_id: str) -> Agent:
        check_id(agent_id, "agent id")
        with self._transaction() as state:
            agent = state.agents.get(agent_id)
            if agent is None:
                raise NotFound(f"agent {agent_id} not found")
            now = self.clock()
            released = [rules.returned(i, now, None, False) for i in state.held_by(agent_id)]
            self._commit("deregister", released, gone=[agent_id], by=agent_id)
            return agent

    def get_agent(self, agent_id: str) -> Agent:
        check_id(agent_id, "agent id")
        with self._transaction() as state:
            agent = state.agents.get(agent_id)
            if agent is None:
                raise NotFound(f"agent {agent_id} not found")
            return agent

    def list_agents(self) -> list[Agent]:
        with self._transaction() as state:
            return sorted(state.agents.values(), key=lambda a: (a.registered_at, a.agent_id))

    # -- work ------------------------------------------------------------------------

    def add_work(self, item: WorkItem) -> str:
        return self.add_many([item])[0]

    def add_many(self, items: Sequence[WorkItem]) -> Enqueued:
        """Enqueue several items in one locked append (one journal record); the lock
        makes the key check and the append one step for every process."""
        prepared = [rules.prepared(item) for item in items]
        with self._transaction() as state:
            new, enqueued = rules.added(state, prepared, self.clock(), self.max_attempts)
            if new:
                self._commit("add", new)
            return enqueued

    def claim(
        self, agent_id: str, filters: ClaimFilter = ANY, lease_s: float | None = None
    ) -> WorkItem | None:
        check_id(agent_id, "agent id")
        with self._transaction() as state:
            item = state.next_pending(filters)
            if item is None:
                return None
            now = self.clock()
            mine = rules.claimed(item, agent_id, now, lease_s or self.lease_s)
            self._commit("claim", [mine], by=agent_id)
            return mine

    def claim_new(self, agent_id: str, item: WorkItem) -> WorkItem:
        check_id(agent_id, "agent id")
        item = pipeline.without_parents(rules.prepared(item))
        with self._transaction() as state:
            if item.work_item_id in state.items:
                raise Conflict(f"work item {item.work_item_id} already exists")
            present = state.keyed(item.key)
            if present is not None:
                raise Conflict(f"work key {item.key!r} is taken by {present.work_item_id}")
            now = self.clock()
            mine = rules.claimed(
                rules.new_item(item, now, self.max_attempts), agent_id, now, self.lease_s
            )
            self._commit("claim_new", [mine], by=agent_id)
            return mine

    def progress(
        self,
        work_id: str,
        percent: int,
        status: str = WorkStatus.IN_PROGRESS,
        agent_id: str | None = None,
    ) -> WorkItem:
        rules.check_percent(percent)
        with self._transaction() as state:
            item = rules.held_item(state, work_id, agent_id)
            new = rules.progressed(item, percent, status, self.clock(), self.lease_s)
            self._commit("progress", [new], by=agent_id)
            return new

    def complete(
        self,
        work_id: str,
        status: str = "success",
        points: int | None = None,
        result: Any = None,
        agent_id: str | None = None,
    ) -> WorkItem:
        rules.check_points(points)
        with self._transaction() as state:
            item = rules.held_item(state, work_id, agent_id)
            new = rules.completed(item, status, points, result, self.clock())
            self._commit("complete", [new], by=agent_id)
            return new

    def fail(
        self, work_id: str, error: str, agent_id: str | None = None, retry: bool = False
    ) -> WorkItem:
        with self._transaction() as state:
            item = rules.held_item(state, work_id, agent_id)
            now = self.clock()
            new = (
                rules.returned(item, now, error, True) if retry else rules.failed(item, error, now)
            )
            self._commit("fail", [new], by=agent_id)
            return new

    def release(self, work_id: str, agent_id: str | None = None) -> WorkItem:
        with self._transaction() as state:
            item = rules.held_item(state, work_id, agent_id)
            new = rules.returned(item, self.clock(), None, False)
            self._commit("release", [new], by=agent_id)
            return new

    def release_agent(self, agent_id: str) -> list[WorkItem]:
        check_id(agent_id, "agent id")
        with self._transaction() as state:
            now = self.clock()
            error = f"agent {agent_id} died while holding the item"
            released = [rules.returned(i, now, error, True) for i in state.held_by(agent_id)]
            if released:
                self._commit("release_agent", released, by=agent_id)
            return released

    def get(self, work_id: str) -> WorkItem:
        check_id(work_id, "work id")
        with self._transaction() as state:
            item = state.items.get(work_id)
            if item is None:
                raise NotFound(f"work item {work_id} not found")
            return item

    def list_work(self, include_terminal: bool = True) -> list[WorkItem]:
        with self._transaction() as state:
            docs = state.items.docs(live_only=not include_terminal)
        return sorted(map(decode_item, docs), key=list_order)  # decoded with the lock free

    def sweep(self) -> list[WorkItem]:
        with self._transaction():
            return self._expired

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        stop.wait(timeout)

    def close(self) -> None:
        with self._mutex:
            if self._views is not None and self._ready and self._fd >= 0:
                self._last_views(self._views)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._lock.close()
            if self._state is not None:
                self._state.close()
                self._state = None

    def _refresh_views(self, views: SwarmshViews, state: SqlState) -> None:
        """The operations of the transaction are recorded: a database that cannot be
        read for the views costs a warning, not the operations (nor their retry)."""
        try:
            views.refresh(state, self._generation, self._offset)
        except sqlite3.Error as exc:
            self._broken = exc
            logger.warning("%s: could not read the index for the views: %s", self.path, exc)

    def _last_views(self, views: SwarmshViews) -> None:
        """A closing process (an agent that stops, the supervisor after a run) leaves the
        views current if it changed the store since and the lock is free: never waits."""
        if not views.behind(self._generation, self._offset) or not self._lock.try_acquire():
            return
        try:
            state = self._begin()
            try:
                views.refresh(state, self._generation, self._offset, force=True)
            finally:
                self._end(state, ok=True)
        except (OSError, StoreError, sqlite3.Error) as exc:
            logger.warning("could not bring the views of %s up to date: %s", self.path, exc)
        finally:
            self._lock.release()

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
