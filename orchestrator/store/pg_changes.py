"""The PostgreSQL store's operation log (``events``), read from a position.

An event's ``ts`` is its transaction's start (``now()``) and its id is taken from a
sequence when it inserts, so neither orders commits: a slow transaction's rows appear
after rows with later times and higher ids. The reader reads by time, which the BRIN
index on ``ts`` serves, leaving out the rows it has already returned, from a lower
bound that no row yet to appear can be below: a little before the newest row returned,
and the start of every transaction open in the database at this poll or the one before
(a row committed in between was open at one of them). Transactions of other roles are
hidden from ``pg_stat_activity``: theirs are covered by the horizon alone.

Positions are ``<id>@<ts>@<bound>``, the bound being the one of the poll that read the
row. Resuming reads from that bound again: at-least-once (the rows between the bound
and the position are sent again, except the position's own), never a loss.
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
_OLDEST_OPEN = (
    "SELECT swarm_now(), extract(epoch FROM min(xact_start))::double precision"
    " FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND xact_start IS NOT NULL"
)


class PgChanges:
    poll_s = 0.05  # two indexed queries per poll
    whole_records = False  # events keep an item's id, status and holder only
    gen = 0  # one log, never started over

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.since = 0.0  # the newest ts returned
        self.open_before: float | None = None  # the oldest open start at the last poll
        self.seen: dict[int, float] = {}  # ids returned at or above the bound

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.store._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    def _bound(self) -> float:
        """The lower bound of this poll's read (see the module's docstring)."""
        now, oldest = self._rows(_OLDEST_OPEN, ())[0]
        bound = self.since - _HORIZON_S
        for start in (oldest, self.open_before):
            if start is not None:
                bound = min(bound, float(start))
        self.open_before = None if oldest is None else float(oldest)
        return max(bound, float(now) - _LONGEST_S)

    def seek_end(self) -> None:
        self.since = float(self._rows("SELECT swarm_now()", ())[0][0])
        bound = self._bound()
        rows = self._rows("SELECT id, ts FROM events WHERE ts >= %s", (bound,))
        self.seen = {int(i): float(ts) for i, ts in rows}

    def seek(self, pos: str) -> bool:
        parts = pos.split("@")
        try:
            last_id, last_ts = int(parts[0]), float(parts[1])
            bound = float(parts[2]) if len(parts) == 3 else last_ts - _HORIZON_S
        except (ValueError, IndexError):
            return False
        if len(parts) > 3:
            return False
        # Only the row at the position is known to have been delivered: the others
        # from its poll's bound on are read again (a repeat, never a loss).
        self.since = last_ts
        self.open_before = bound
        self.seen = {last_id: last_ts}
        return True

    def poll(self) -> list[Change]:
        bound = self._bound()
        rows = self._rows(
            "SELECT id, ts, op, work_item_id, agent_id, status FROM events"
            " WHERE ts >= %s AND id <> ALL(%s) ORDER BY ts, id LIMIT %s",
            (bound, list(self.seen), _BATCH),
        )
        changes: list[Change] = []
        for event_id, ts, op, work_id, agent_id, status in rows:
            self.seen[event_id] = ts
            self.since = max(self.since, ts)
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
        self.seen = {i: ts for i, ts in self.seen.items() if ts >= bound}
        return changes

    def sweep(self) -> None:
        """Expired leases are logged by whoever claims next: nothing to do here."""

    def close(self) -> None:
        """Nothing to close: the store's pool serves the reads."""
