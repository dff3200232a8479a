"""Retiring agents that died without deregistering (a ``kill -9`` of a supervisor's
whole process group takes its agents with it, and nobody says goodbye for them).

An agent is retired (its items released, its record removed) when its host is this
one and its pid is gone, or, on any host, when its last heartbeat is older than
``stale_after_s``: ten leases, and at least ten minutes (agents beat every third of a
lease; a person's agent registered with ``swarm register`` should beat now and then).
A supervisor does this when it starts and then every few seconds with the lease sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psutil

from orchestrator.errors import NotFound, SwarmError
from orchestrator.records import Agent
from orchestrator.store.base import Store

logger = logging.getLogger(__name__)

MIN_STALE_S = 600.0
STALE_LEASES = 10


def stale_after_s(lease_s: float) -> float:
    """How old a heartbeat may get before its agent is taken for dead."""
    return max(MIN_STALE_S, STALE_LEASES * lease_s)


def _why_dead(
    agent: Agent, host: str, now: float, limit: float, alive: Callable[[int], bool]
) -> str | None:
    if agent.host == host and agent.pid is not None and agent.pid > 0 and not alive(agent.pid):
        return f"pid {agent.pid} on this host is gone"
    if agent.last_heartbeat and now - agent.last_heartbeat > limit:
        return f"no heartbeat for {now - agent.last_heartbeat:.0f}s (limit {limit:g}s)"
    return None


def retire_dead_agents(
    store: Store,
    host: str,
    lease_s: float,
    now: float | None = None,
    alive: Callable[[int], bool] = psutil.pid_exists,
) -> list[str]:
    """Deregister the agents that are dead by the rules above; return their ids."""
    now = time.time() if now is None else now
    limit = stale_after_s(lease_s)
    retired = []
    for agent in store.list_agents():
        why = _why_dead(agent, host, now, limit, alive)
        if why is None:
            continue
        try:
            store.deregister(agent.agent_id)  # releases what it still held
        except NotFound:
            continue  # deregistered meanwhile
        except SwarmError as exc:
            logger.warning("could not retire agent %s (%s): %s", agent.agent_id, why, exc)
            continue
        logger.warning("retired agent %s: %s", agent.agent_id, why)
        retired.append(agent.agent_id)
    return retired
