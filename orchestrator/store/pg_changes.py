"""The PostgreSQL store's operation log (``events``), read from a position.

An event's ``ts`` is its transaction's start (``now()``) and its id is taken from a
sequence when it inserts, so neither orders commits: a slow transaction's rows appear
after rows with later times and higher ids. A row yet to appear is either recent (a
little before the newest row returned: the horizon) or written by a transaction open in
the database at this poll or the one before (a row committed in between was open at
one of them), and then its ``ts`` is exactly that transaction's start, which
``pg_stat_activity`` shows. So a poll reads, by the BRIN index on ``ts``, the recent
rows and the rows at those exact starts, leaving out the ones it has already returned.
Reading from the oldest start on instead re-sent every row since it whenever an old
start showed up after those rows had been returned — and PostgreSQL briefly reports a
LISTEN connection's last statement start as an open transaction's while it takes a
notification (its state stays ``idle``: idle backends are left out). Transactions of
other roles are hidden from ``pg_stat_activity``: theirs are covered by the horizon
alone.

Positions are ``<id>@<ts>@<bound>``, the bound being the oldest time a row yet to appear
could have at the poll that read the row. Resuming reads from that bound once:
at-least-once (the rows between the bound and the position are sent again, except the
position's own), never a loss — up to a bound ``_LONGEST_S`` old: an older one resumes
that far back, and ``seek`` sets ``gap``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.store.changes import Change

if TYPE_CHECKING:
    from orchestrator.store.postgres import PostgresStore

# How long a transaction may take between its start and its first write, when it is
# not visible in pg_stat_activity; and how far back an open one can hold the bound.
_HORIZON_S = 2.0
_LONGEST_S = 600.0
_BATCH = 5000
_OPEN_STARTS = (
    "SELECT swarm_now(),"
    " array_agg(DISTINCT extract(epoch FROM xact_start)::double precision)"
    " FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL"
    # Idle is outside any transaction: an idle backend with a start is a LISTEN
    # connection taking a notification, which shows its last statement's start.
    " AND state IS DISTINCT FROM 'idle'"
)

# Two reads, each on the BRIN index of ts (an OR of the two conditions is a full scan).
_READ = (
    "SELECT * FROM ("
    " SELECT id, ts, op, work_item_id, agent_id, status FROM events"
    " WHERE ts >= %(recent)s AND id <> ALL(%(seen)s)"
    " UNION ALL"
    " SELECT id, ts, op, work_item_id, agent_id, status FROM events"
    " WHERE ts = ANY(%(starts)s) AND ts < %(recent)s AND id <> ALL(%(seen)s)"
    ") AS due ORDER BY ts, id LIMIT %(batch)s"
)
_SEEN_AT_START = (
    "SELECT id, ts FROM events WHERE ts >= %(recent)s"
    " UNION ALL SELECT id, ts FROM events WHERE ts = ANY(%(starts)s) AND ts < %(recent)s"
)


class PgChanges:
    poll_s = 0.05  # two indexed queries per poll
    whole_records = False  # events keep an item's id, status and holder only
    gen = 0  # one log, never started over
    gap = False

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.since = 0.0  # the newest ts returned
        self.open_before: list[float] = []  # the open transactions' starts at the last poll
        self.floor: float | None = None  # resuming: read from here once
        self.seen: dict[int, float] = {}  # ids returned that a next poll may read again

    def _rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self.store._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    def _open_starts(self) -> tuple[float, list[float]]:
        """The database's time, and the starts of the transactions open in it."""
        now, starts = self._rows(_OPEN_STARTS, ())[0]
        return float(now), [float(start) for start in starts or ()]

    def _window(self) -> tuple[float, float, list[float], float]:
        """What this poll reads (see the module's docstring): rows from ``recent`` on
        and rows at the exact ``starts``; ``bound``, the oldest of them; and ``now``,
        the database's time when the starts were taken."""
        now, open_now = self._open_starts()
        recent = self.since - _HORIZON_S
        if self.floor is not None:
            recent, self.floor = min(recent, self.floor), None
        recent = max(recent, now - _LONGEST_S)
        starts = sorted(
            {
                start
                for start in (*open_now, *self.open_before)
                if now - _LONGEST_S <= start < recent
            }
        )
        self.open_before = open_now
        return now, recent, starts, min([recent, *starts])

    def seek_end(self) -> None:
        self.since = float(self._rows("SELECT swarm_now()", ())[0][0])
        _, recent, starts, _ = self._window()
        rows = self._rows(_SEEN_AT_START, {"recent": recent, "starts": starts})
        self.seen = {int(i): float(ts) for i, ts in rows}

    def seek(self, pos: str) -> None:
        parts = pos.split("@")
        try:
            if len(parts) not in (2, 3):
                raise ValueError(pos)
            last_id, last_ts = int(parts[0]), float(parts[1])
            bound = float(parts[2]) if len(parts) == 3 else last_ts - _HORIZON_S
        except ValueError:  # not a position of this log: from now on, after a gap
            self.seek_end()
            self.gap = True
            return
        # Only the row at the position is known to have been delivered: the others
        # from its poll's bound on are read again (a repeat, never a loss).
        self.since = last_ts
        self.floor = bound
        self.open_before = []
        self.seen = {last_id: last_ts}
        # Reads reach back _LONGEST_S at most (_window): rows before that are not sent.
        now = float(self._rows("SELECT swarm_now()", ())[0][0])
        self.gap = bound < now - _LONGEST_S

    def poll(self) -> list[Change]:
        now, recent, starts, bound = self._window()
        rows = self._rows(
            _READ, {"recent": recent, "starts": starts, "seen": list(self.seen), "batch": _BATCH}
        )
        changes: list[Change] = []
        for event_id, ts, op, work_id, agent_id, status in rows:
            self.seen[event_id] = ts
            # Not past the time the starts were taken: a transaction that began after
            # that and is still open is in no list of starts, and its rows must stay
            # within the next poll's recent rows however late this read ran.
            self.since = max(self.since, min(ts, now))
            change = Change(pos=f"{event_id}@{ts!r}@{bound!r}", op=op, ts=ts)
            if work_id is not None:
                change.items.append(
                    {"work_item_id": work_id, "status": status, "agent_id": agent_id}
                )
            elif op == "deregister" and agent_id is not None:
                change.gone.append(agent_id)
            elif agent_id is not None:
                change.agents.append({"agent_id": agent_id, "status": status})
            changes.append(change)
        if len(rows) >= _BATCH:
            # Cut short: the rest may be at starts that are no longer open; read them next.
            self.open_before = sorted({*self.open_before, *starts})
        # The next poll reads from this recent on (since only grows) and at starts
        # that were open now: the rows it may read again.
        at_starts = set(starts)
        self.seen = {i: ts for i, ts in self.seen.items() if ts >= recent or ts in at_starts}
        return changes

    def sweep(self) -> None:
        """Expired leases are logged by whoever claims next: nothing to do here."""

    def close(self) -> None:
        """Nothing to close: the store's pool serves the reads."""
