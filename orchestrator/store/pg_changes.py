"""The PostgreSQL store's operation log (``events``), read from a position.

Positions are ``<id>@<ts>``. Ids come from a sequence, taken when a transaction
inserts, so a row may become visible after rows with higher ids (it committed later).
The reader therefore reads by time, which the BRIN index on ``ts`` serves, from a
little before the newest row it has seen, leaving out the rows it has already returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.store.changes import Change

if TYPE_CHECKING:
    from orchestrator.store.postgres import PostgresStore

# How long a transaction may take between taking its event id and committing it.
_HORIZON_S = 2.0
_BATCH = 5000


class PgChanges:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.since = 0.0  # read rows with ts >= since - horizon
        self.seen: dict[int, float] = {}  # ids returned within the horizon

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.store._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    def seek_end(self) -> None:
        now = self._rows("SELECT swarm_now()", ())[0][0]
        self.since = float(now)
        rows = self._rows("SELECT id, ts FROM events WHERE ts >= %s", (now - _HORIZON_S,))
        self.seen = {int(i): float(ts) for i, ts in rows}

    def seek(self, pos: str) -> bool:
        try:
            raw_id, raw_ts = pos.split("@")
            last_id, last_ts = int(raw_id), float(raw_ts)
        except ValueError:
            return False
        # Rows up to this one (by id and time) were delivered; a later commit with a
        # lower id and a later time was not.
        rows = self._rows(
            "SELECT id, ts FROM events WHERE ts >= %s AND ts <= %s AND id < %s",
            (last_ts - _HORIZON_S, last_ts, last_id),
        )
        self.since = last_ts
        self.seen = {int(i): float(ts) for i, ts in rows}
        self.seen[last_id] = last_ts
        return True

    def poll(self) -> list[Change]:
        rows = self._rows(
            "SELECT id, ts, op, work_item_id, agent_id, status FROM events"
            " WHERE ts >= %s AND id <> ALL(%s) ORDER BY ts, id LIMIT %s",
            (self.since - _HORIZON_S, list(self.seen), _BATCH),
        )
        changes: list[Change] = []
        for event_id, ts, op, work_id, agent_id, status in rows:
            if event_id in self.seen:
                continue
            self.seen[event_id] = ts
            self.since = max(self.since, ts)
            change = Change(pos=f"{event_id}@{ts!r}", op=op, ts=ts)
            if work_id is not None:
                change.items.append(
                    {"work_item_id": work_id, "status": status, "agent_id": agent_id}
                )
            elif op == "deregister" and agent_id is not None:
                change.gone.append(agent_id)
            elif agent_id is not None:
                change.agents.append({"agent_id": agent_id, "status": status})
            changes.append(change)
        horizon = self.since - _HORIZON_S
        self.seen = {i: ts for i, ts in self.seen.items() if ts >= horizon}
        return changes

    def close(self) -> None:
        """Nothing to close: the store's pool serves the reads."""
