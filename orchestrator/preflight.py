"""Checks a swarm passes before any agent claims an item, and the work no group can take.

A ``claude`` group without ``ANTHROPIC_API_KEY`` or an ``ollama`` group whose server
does not answer would otherwise fail every item it claims until they are all dead;
saying so in one line at start costs a second and saves the queue.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from orchestrator.config import AgentGroup
from orchestrator.errors import ConfigError, SwarmError
from orchestrator.records import ClaimFilter, WorkItem, WorkStatus
from orchestrator.store.base import Store

OLLAMA_DEFAULT_HOST = "http://localhost:11434"
CONNECT_TIMEOUT_S = 2.0


class ServiceUnreachable(SwarmError):
    """A service an agent group needs does not answer."""


def check_groups(groups: Iterable[AgentGroup], env: Mapping[str, str] = os.environ) -> None:
    """Raise one clear error for the first group that cannot work at all."""
    for group in groups:
        if group.count == 0:
            continue
        if group.backend == "claude" and not env.get("ANTHROPIC_API_KEY", "").strip():
            raise ConfigError(
                f"agent group {group.name} uses the claude backend but ANTHROPIC_API_KEY is"
                " not set: export it, or set count = 0 for this group"
            )
        if group.backend == "ollama":
            host = group.host or env.get("OLLAMA_HOST") or OLLAMA_DEFAULT_HOST
            problem = _unreachable(host)
            if problem:
                raise ServiceUnreachable(
                    f"agent group {group.name}: the Ollama server at {host} does not answer"
                    f" ({problem}): start it (ollama serve) or set host / OLLAMA_HOST"
                )


def _unreachable(url: str) -> str | None:
    """Why nothing accepts connections at ``url`` (None when something does)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"Ollama host {url!r} has no valid port: use http://HOST:PORT") from None
    try:
        with socket.create_connection((parts.hostname or "localhost", port), CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def filters_of(groups: Iterable[AgentGroup]) -> list[ClaimFilter]:
    return [g.claim_filter() for g in groups if g.count > 0]


def unclaimable(pending: Iterable[WorkItem], filters: list[ClaimFilter]) -> Counter[str]:
    """Work types (with counts) of pending items that no group's filter accepts."""
    return Counter(
        item.work_type
        for item in pending
        if not any(f.accepts(item.work_type, item.team) for f in filters)
    )


def describe(types: Counter[str]) -> str:
    return ", ".join(f"{work_type} ({n})" for work_type, n in sorted(types.items()))


def drain_state(
    store: Store, filters: list[ClaimFilter], held_ok: bool = False
) -> tuple[bool, Counter[str]]:
    """Whether the swarm's work is done (nothing held, nothing pending it can claim), and
    the pending work types it cannot claim. ``held_ok`` counts only pending items."""
    live = store.list_work(include_terminal=False)
    pending = [i for i in live if i.status == WorkStatus.PENDING]
    stuck = unclaimable(pending, filters)
    held = not held_ok and any(i.held for i in live)
    return (not held and sum(stuck.values()) == len(pending)), stuck


def dead_errors(store: Store, since: float) -> Counter[str]:
    """First error lines of the items that died at or after ``since``, counted."""
    return Counter(
        (i.error or "no error recorded").splitlines()[0][:300]
        for i in store.list_work()
        if i.status == WorkStatus.DEAD and (i.completed_at or i.updated_at) >= since
    )
