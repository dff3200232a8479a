"""The file store's state, shared by every process in one SQLite database.

The journal stays the operation log and the source of truth. ``state.sqlite`` is its
index: every process reads and changes it in place, under the store's flock, so no
process replays what the others wrote and an operation costs the same whatever the
number of processes and of items. Its ``position`` row says how far into which journal
file it reaches, in the same transaction as the changes: a writer killed between its
journal append and its commit leaves the journal longer, and the next process applies
the rest; a database that does not match the journal is rebuilt from the snapshot and
the journal (``FileJournal``).

``SqlState`` answers the questions the rules ask (``state.py``, ``pipeline.py``) with
indexed queries: the next pending item, an agent's holdings, expired leases, a key's
item, an item's children. Items are read once per transaction and kept until its end
(``begin`` forgets them: another process may have changed them since).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

from orchestrator.records import (
    PRIORITIES,
    TERMINAL_STATUSES,
    Agent,
    ClaimFilter,
    WorkItem,
)
from orchestrator.store import journal

FORMAT = 2  # PRAGMA user_version: a database of another format is rebuilt
BUSY_TIMEOUT_MS = 30_000
# An explicit compaction rewrites the database when this share of its pages is free, or
# of its items was archived.
RECLAIM_SHARE = 0.25

_TERMINAL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
_UNKNOWN_RANK = len(PRIORITIES) - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS position (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    generation INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    snapshots TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    rank INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    work_type TEXT NOT NULL,
    team TEXT,
    holder TEXT,
    lease REAL,
    key TEXT,
    doc BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_pending ON items (rank, created_at, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS items_pending_type ON items (work_type, rank, created_at, id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS items_held ON items (lease, holder) WHERE holder IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_key ON items (key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS links (
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    registered_at REAL NOT NULL,
    doc BLOB NOT NULL
) WITHOUT ROWID;
"""

_UPDATE_ITEM = """
UPDATE items SET status = ?, rank = ?, updated_at = ?, holder = ?, lease = ?, doc = ?
WHERE id = ?
"""
_PUT_ITEM = """
INSERT INTO items (id, status, rank, created_at, updated_at, work_type, team, holder, lease,
                   key, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status, rank = excluded.rank, created_at = excluded.created_at,
    updated_at = excluded.updated_at, work_type = excluded.work_type, team = excluded.team,
    holder = excluded.holder, lease = excluded.lease, key = excluded.key, doc = excluded.doc
"""
_NEXT_ANY = (
    "SELECT doc FROM items WHERE status = 'pending' {teams} ORDER BY rank, created_at, id LIMIT 1"
)
_NEXT_OF_TYPE = (
    "SELECT rank, created_at, id, doc FROM items WHERE status = 'pending' AND work_type = ?"
    " {teams} ORDER BY rank, created_at, id LIMIT 1"
)
_PURGEABLE = f"""
SELECT id, doc FROM items AS i WHERE status IN ({_TERMINAL}) AND updated_at < ?
AND NOT EXISTS (
    SELECT 1 FROM links AS l JOIN items AS c ON c.id = l.child
    WHERE l.parent = i.id AND c.status NOT IN ({_TERMINAL})
)
"""


_POSITION = """
SELECT generation, offset, inode, mtime_ns, snapshots, EXISTS (SELECT 1 FROM links),
    EXISTS (SELECT 1 FROM agents), (SELECT min(lease) FROM items WHERE holder IS NOT NULL)
FROM position
"""


class Position(NamedTuple):
    """How far into which journal file the database reaches, with the marks of the
    files it was built from: the journal's time of change (one of that length changed
    since was rewritten or restored from a backup) and the snapshots' identity, size and
    time of change. A process opening the store checks them and, where a file changed
    under the database, reads the store again from its files (and their errors)."""

    generation: int
    offset: int
    inode: int
    mtime_ns: int
    snapshots: str


def decode_item(doc: bytes) -> WorkItem:
    item = journal.item_version(orjson.loads(doc), None)
    assert item is not None  # a stored document is a whole version
    return item


class SqlState:
    """One process's connection to ``state.sqlite``; use it inside ``begin``/``commit``."""

    def __init__(self, path: str, durability: str) -> None:
        # Changes are made under the store's flock, so SQLite's own lock never waits;
        # the timeout only covers a reader of another kind (sqlite3 on the command line).
        self.pid = os.getpid()
        self.path = path
        self.db = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
            # The journal is what survives a crash (fsync'd when asked): the database
            # only has to stay consistent, which WAL keeps through a kill at any point.
            sync = "NORMAL" if durability == "fsync" else "OFF"
            self.db.execute(f"PRAGMA synchronous = {sync}")
            # A rebuild writes every page to the WAL once: leave the file small after.
            self.db.execute("PRAGMA journal_size_limit = 8388608")
            if self.db.execute("PRAGMA user_version").fetchone()[0] != FORMAT:
                self._recreate()
            self._inode = os.stat(path).st_ino
        except BaseException:
            self.db.close()
            raise
        self.items = Items(self.db)
        self.agents = Agents(self.db)
        self.keys = Keys(self.db)
        self.children = Children(self.db)
        # No held item's lease ends before this (a lower bound, -inf when not known):
        # most operations then skip the query for expired leases.
        self.lease_floor = _UNKNOWN

    def is_current(self) -> bool:
        """Whether the file this connection has open is still the store's database
        (another process deletes and makes it again when it finds it damaged)."""
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def _recreate(self) -> None:
        """Made afresh (new, or of another format): the journal fills it."""
        tables = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        drops = "".join(f'DROP TABLE "{name}";' for (name,) in tables.fetchall())
        self.db.executescript(
            f"BEGIN IMMEDIATE;{drops}{SCHEMA};PRAGMA user_version = {FORMAT};COMMIT;"
        )

    # -- transactions ----------------------------------------------------------------

    def begin(self) -> None:
        if self.db.in_transaction:  # left open by an interrupted transaction: not ours now
            self.db.execute("ROLLBACK")
        self.db.execute("BEGIN IMMEDIATE")
        self._forget()

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def _forget(self) -> None:
        """What this connection read: another process may change it between transactions."""
        self.items.cache.clear()
        self.children.known = self.agents.known = None
        self.lease_floor = _UNKNOWN

    def rollback(self) -> None:
        self._forget()
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolled back itself (an I/O error), or the file is damaged

    def position(self) -> Position | None:
        """The position row, read with the answers every operation wants next (whether
        any link or agent exists, the earliest lease's end): one statement, not four."""
        row = self.db.execute(_POSITION).fetchone()
        if row is None:
            return None
        self.children.known, self.agents.known = bool(row[5]), bool(row[6])
        self.lease_floor = _NEVER if row[7] is None else row[7]
        return Position(*row[:5])

    def set_position(self, position: Position) -> None:
        self.db.execute("INSERT OR REPLACE INTO position VALUES (1, ?, ?, ?, ?, ?)", position)

    def clear(self) -> None:
        """Forget everything (before a rebuild from the snapshot and journal)."""
        for table in ("items", "links", "agents", "position"):
            self.db.execute(f"DELETE FROM {table}")
        self._forget()
        self.lease_floor = _NEVER  # nothing held; put_item lowers it

    def close(self) -> None:
        self.rollback()
        self.db.close()

    def reclaim(self, archived_share: float) -> int:
        """Give the disk back the room archived items left (outside a transaction, under
        the store's lock): rewrite the database when at least RECLAIM_SHARE of its pages
        are free or of its items were just archived (rows deleted here and there leave
        pages part empty, not free), then empty the write-ahead log. Return the bytes
        freed."""
        before = self.disk_bytes()
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        if archived_share >= RECLAIM_SHARE or (pages and free / pages >= RECLAIM_SHARE):
            self.db.execute("VACUUM")
        # Emptying the log waits for readers: a sqlite3 shell left open on the file
        # would hold up the whole swarm for the 30 s of the connection's timeout.
        self.db.execute("PRAGMA busy_timeout = 1000")
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return max(0, before - self.disk_bytes())

    def disk_bytes(self) -> int:
        """The database and its write-ahead log, on disk."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except FileNotFoundError:
                pass
        return total

    # -- applying records (own writes and journal replay alike) --------------------

    def put_item(self, item: WorkItem) -> None:
        held = item.held
        if held:
            self.lease_floor = min(self.lease_floor, _lease(item))
        known = self.items.cache.get(item.work_item_id)
        if known is not None and known.created_at == item.created_at:
            # A new version of an item this transaction read: only what changes.
            self.db.execute(
                _UPDATE_ITEM,
                (
                    item.status,
                    PRIORITIES.get(item.priority, _UNKNOWN_RANK),
                    item.updated_at,
                    item.agent_id if held else None,
                    _lease(item) if held else None,
                    orjson.dumps(item),
                    item.work_item_id,
                ),
            )
            self.items.cache[item.work_item_id] = item
            return
        self.db.execute(
            _PUT_ITEM,
            (
                item.work_item_id,
                item.status,
                PRIORITIES.get(item.priority, _UNKNOWN_RANK),
                item.created_at,
                item.updated_at,
                item.work_type,
                item.team,
                item.agent_id if held else None,
                _lease(item) if held else None,
                item.key,
                orjson.dumps(item),
            ),
        )
        if item.parents:
            links = [(parent, item.work_item_id) for parent in item.parents]
            self.db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?)", links)
            self.children.known = True
        self.items.cache[item.work_item_id] = item

    def put_agent(self, agent: Agent) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO agents VALUES (?, ?, ?)",
            (agent.agent_id, agent.registered_at, orjson.dumps(agent)),
        )
        self.agents.known = True

    def drop_agent(self, agent_id: str) -> None:
        self.db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
        self.agents.known = None

    def apply_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Replay journal events in order. An item changed by several of them is put
        once, as its last version."""
        latest: dict[str, dict[str, Any]] = {}
        for event in events:
            for raw in event.get("items", ()):
                work_id = raw["work_item_id"]
                before = latest.get(work_id)
                # A whole version replaces what came before; a change applies on top.
                latest[work_id] = raw if before is None or journal.is_whole(raw) else before | raw
            for raw in event.get("agents", ()):
                self.put_agent(Agent.from_dict(raw))
            for agent_id in event.get("gone", ()):
                self.drop_agent(agent_id)
        for work_id, raw in latest.items():
            item = journal.item_version(raw, self.items.get(work_id))
            if item is not None:
                self.put_item(item)

    def purge(self, before: float) -> list[WorkItem]:
        """Forget finished items last changed before ``before`` that no unfinished child
        still needs (its output, its state); return them."""
        rows = self.db.execute(_PURGEABLE, (before,)).fetchall()
        ids = [(work_id,) for work_id, _ in rows]
        # An archived item frees its key (the row goes): the same work may be enqueued again.
        self.db.executemany("DELETE FROM items WHERE id = ?", ids)
        self.db.executemany("DELETE FROM links WHERE parent = ?", ids)
        for (work_id,) in ids:
            self.items.cache.pop(work_id, None)
        self.children.known = None
        return [decode_item(doc) for _, doc in rows]

    # -- queries ---------------------------------------------------------------------

    def keyed(self, key: str | None) -> WorkItem | None:
        """The item holding ``key``, if any."""
        work_id = None if key is None else self.keys.get(key)
        return None if work_id is None else self.items.get(work_id)

    def held_by(self, agent_id: str) -> list[WorkItem]:
        # Through the index of held items (a few per agent), not one of its own: one
        # index less to change at every claim and completion.
        rows = self.db.execute(
            "SELECT id, doc FROM items INDEXED BY items_held"
            " WHERE holder IS NOT NULL AND holder = ? ORDER BY id",
            (agent_id,),
        )
        return [self.items.known(work_id, doc) for work_id, doc in rows]

    def next_pending(self, filters: ClaimFilter) -> WorkItem | None:
        """The first pending item ``filters`` accepts: by priority, then oldest."""
        teams: tuple[str, ...] = ()
        teams_sql = ""
        if filters.teams is not None:
            teams = tuple(sorted(filters.teams))
            teams_sql = f"AND team IN ({', '.join('?' * len(teams))})" if teams else "AND 0"
        if filters.work_types is None:
            row = self.db.execute(_NEXT_ANY.format(teams=teams_sql), teams).fetchone()
            return None if row is None else self.items.known(None, row[0])
        # One indexed lookup per work type, the best of them taken: an IN list would
        # make SQLite sort every pending item of those types.
        query = _NEXT_OF_TYPE.format(teams=teams_sql)
        best: tuple[Any, ...] | None = None
        for work_type in sorted(filters.work_types):
            row = self.db.execute(query, (work_type, *teams)).fetchone()
            if row is not None and (best is None or row[:3] < best[:3]):
                best = row
        return None if best is None else self.items.known(best[2], best[3])

    def expired(self, now: float) -> Iterator[WorkItem]:
        """Held items whose lease ended at or before ``now``, earliest first."""
        if self.lease_floor > now:
            return
        rows = self.db.execute(
            "SELECT id, doc FROM items WHERE holder IS NOT NULL AND lease <= ? ORDER BY lease, id",
            (now,),
        ).fetchall()
        for work_id, doc in rows:
            yield self.items.known(work_id, doc)


def _lease(item: WorkItem) -> float:
    """A held item's place in the index of held items: its lease's end (one without a
    lease, which only a hand-edited snapshot holds, never expires)."""
    lease = item.lease_expires_at
    return _NEVER if lease is None else lease


_NEVER = float("inf")
_UNKNOWN = float("-inf")


class Items:
    """The work items by id, read on demand and kept for the transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.cache: dict[str, WorkItem] = {}

    def known(self, work_id: str | None, doc: bytes) -> WorkItem:
        """The version this transaction already holds (keeping it one object, which
        keeps a journal record of its change small), else ``doc`` decoded."""
        if work_id is not None and (item := self.cache.get(work_id)) is not None:
            return item
        item = decode_item(doc)
        self.cache[item.work_item_id] = item
        return item

    def get(self, work_id: str, default: WorkItem | None = None) -> WorkItem | None:
        item = self.cache.get(work_id)
        if item is not None:
            return item
        row = self._db.execute("SELECT doc FROM items WHERE id = ?", (work_id,)).fetchone()
        if row is None:
            return default
        item = self.cache[work_id] = decode_item(row[0])
        return item

    def __getitem__(self, work_id: str) -> WorkItem:
        item = self.get(work_id)
        if item is None:
            raise KeyError(work_id)
        return item

    def __contains__(self, work_id: object) -> bool:
        return isinstance(work_id, str) and self.get(work_id) is not None

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM items").fetchone()[0]
        return count

    def docs(self, live_only: bool = False) -> list[bytes]:
        """Every item's stored document (cheap to fetch under the lock; decode after)."""
        where = f" WHERE status NOT IN ({_TERMINAL})" if live_only else ""
        return [doc for (doc,) in self._db.execute(f"SELECT doc FROM items{where}")]

    def values(self) -> list[WorkItem]:
        return [decode_item(doc) for doc in self.docs()]


class Agents:
    """The registered agents by id."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.known: bool | None = None  # whether any agent exists, when already asked

    def get(self, agent_id: str) -> Agent | None:
        row = self._db.execute("SELECT doc FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return None if row is None else Agent.from_dict(orjson.loads(row[0]))

    def __contains__(self, agent_id: object) -> bool:
        row = self._db.execute("SELECT 1 FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return row is not None

    def __bool__(self) -> bool:
        if self.known is None:
            self.known = self._db.execute("SELECT 1 FROM agents LIMIT 1").fetchone() is not None
        return self.known

    def values(self) -> list[Agent]:
        rows = self._db.execute("SELECT doc FROM agents ORDER BY registered_at, id")
        return [Agent.from_dict(orjson.loads(doc)) for (doc,) in rows]


class Keys:
    """Work keys to the ids of the items holding them (until archived)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT id FROM items WHERE key = ? LIMIT 1", (key,)).fetchone()
        return None if row is None else str(row[0])


class Children:
    """Parent id -> ids of the items that name it (``pipeline.settle`` reads it)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.known: bool | None = None  # whether any link exists, asked once per transaction

    def __bool__(self) -> bool:
        if self.known is None:
            self.known = self._db.execute("SELECT 1 FROM links LIMIT 1").fetchone() is not None
        return self.known

    def __contains__(self, parent: object) -> bool:
        row = self._db.execute("SELECT 1 FROM links WHERE parent = ? LIMIT 1", (parent,))
        return row.fetchone() is not None

    def get(self, parent: str, default: Iterable[str] = ()) -> Iterable[str]:
        rows = self._db.execute("SELECT child FROM links WHERE parent = ?", (parent,))
        children = [child for (child,) in rows]
        return children or default
