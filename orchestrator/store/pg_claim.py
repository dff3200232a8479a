"""The PostgreSQL store's claims of the next pending items: one, or several in one
round trip for agents that run short items. Both are one server-side call (migrations
0002 and 0009, sharing one lease check since 0010) that first returns expired leases,
claims with ``FOR UPDATE SKIP LOCKED`` and writes one ``claim`` event per item, in one
transaction. A mixin, so that ``postgres.py`` stays within the module size cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from psycopg_pool import ConnectionPool

from orchestrator.ids import check_id
from orchestrator.records import ANY, ClaimFilter, WorkItem
from orchestrator.store.pg_sql import CLAIM, CLAIM_MANY

T = TypeVar("T")


class PgClaims:
    lease_s: float
    _pool: ConnectionPool

    def _retrying(self, action: Callable[[bool], T]) -> T:
        raise NotImplementedError  # PostgresStore's: retried while the connection is lost

    def _claim_params(
        self, agent_id: str, filters: ClaimFilter, lease_s: float | None
    ) -> dict[str, Any]:
        check_id(agent_id, "agent id")
        return {
            "by": agent_id,
            "lease": lease_s or self.lease_s,
            "types": sorted(filters.work_types) if filters.work_types is not None else None,
            "teams": sorted(filters.teams) if filters.teams is not None else None,
        }

    def claim(
        self, agent_id: str, filters: ClaimFilter = ANY, lease_s: float | None = None
    ) -> WorkItem | None:
        params = self._claim_params(agent_id, filters, lease_s)

        def attempt(retrying: bool) -> WorkItem | None:
            with self._pool.connection() as conn:
                row = conn.execute(CLAIM, params).fetchone()
            return WorkItem(*row) if row else None

        return self._retrying(attempt)

    def claim_many(
        self,
        agent_id: str,
        filters: ClaimFilter = ANY,
        count: int = 1,
        lease_s: float | None = None,
    ) -> list[WorkItem]:
        """Claim up to ``count`` pending items at once, in queue order (fewer when fewer
        are pending). Each is held exactly as if claimed alone: its own lease (extended
        by the agent's heartbeats), its own ``claim`` event; ``release`` gives back one
        not started, ``release_agent`` and ``deregister`` all of them."""
        params = self._claim_params(agent_id, filters, lease_s) | {"count": max(1, count)}

        def attempt(retrying: bool) -> list[WorkItem]:
            with self._pool.connection() as conn:
                rows = conn.execute(CLAIM_MANY, params).fetchall()
            return [WorkItem(*row) for row in rows]

        return self._retrying(attempt)
