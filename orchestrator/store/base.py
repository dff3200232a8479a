"""The store contract: records, vocabularies and the ``Store`` protocol.

Every backend (the file journal, PostgreSQL) implements ``Store`` and passes the one
contract suite in ``tests/test_store_contract.py``. Records are plain dataclasses so
that they serialise straight to the JSON files SwarmSH users read with ``jq``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.errors import (
    Conflict,
    InvalidArgument,
    LockTimeout,
    NotFound,
    PermissionDenied,
    StorageFull,
    StoreError,
    SwarmError,
)

__all__ = [
    "ACTIVE_STATUSES",
    "AGENT_STATUSES",
    "ALL_STATUSES",
    "COMPLETE_STATUSES",
    "HELD_STATUSES",
    "PRIORITIES",
    "PROGRESS_STATUSES",
    "TERMINAL_STATUSES",
    "Agent",
    "ClaimFilter",
    "Conflict",
    "InvalidArgument",
    "LockTimeout",
    "NotFound",
    "PermissionDenied",
    "StorageFull",
    "Store",
    "StoreError",
    "SwarmError",
    "WorkItem",
]

# Claim order: lower rank first.
PRIORITIES: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# Work item statuses.
PENDING = "pending"
CLAIMED = "claimed"
IN_PROGRESS = "in_progress"
BLOCKED = "blocked"
COMPLETED = "completed"
FAILED = "failed"
DEAD = "dead"
HELD_STATUSES = frozenset({CLAIMED, IN_PROGRESS, BLOCKED})
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, DEAD})
ACTIVE_STATUSES = HELD_STATUSES | {PENDING}
ALL_STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES

# What `swarm progress` accepts (SwarmSH's list): pending releases the item,
# completed completes it with status success.
PROGRESS_STATUSES = ("in_progress", "blocked", "pending", "completed")
# What `swarm complete` accepts; success -> completed, failed/blocked -> failed.
COMPLETE_STATUSES = ("success", "failed", "blocked")
AGENT_STATUSES = ("active", "inactive")

STORY_POINTS_RANGE = (1, 21)


@dataclass
class WorkItem:
    """One unit of work. Times are Unix epoch seconds (``jq 'todate'`` shows them)."""

    work_item_id: str
    work_type: str
    description: str
    priority: str = "medium"
    team: str | None = None
    status: str = PENDING
    agent_id: str | None = None
    progress: int = 0
    payload: Any = None
    result: Any = None
    completion_status: str | None = None
    story_points: int | None = None
    error: str | None = None
    attempts: int = 0
    max_attempts: int = 0  # 0 = the store's max_attempts
    created_at: float = 0.0
    updated_at: float = 0.0
    claimed_at: float | None = None
    completed_at: float | None = None
    lease_expires_at: float | None = None
    trace_context: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkItem:
        return cls(**data)

    def evolve(self, **changes: Any) -> WorkItem:
        """A changed copy; several times faster than ``dataclasses.replace`` (hot path)."""
        new = object.__new__(WorkItem)
        new.__dict__ = self.__dict__ | changes
        return new

    @property
    def held(self) -> bool:
        return self.status in HELD_STATUSES

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(slots=True)
class Agent:
    """A registered agent process (or a person driving the CLI)."""

    agent_id: str
    capacity: int = 100
    status: str = "active"
    specialization: str = "general"
    team: str | None = None
    role: str | None = None
    host: str | None = None
    pid: int | None = None
    registered_at: float = 0.0
    last_heartbeat: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ClaimFilter:
    """Restrict a claim to some work types and/or teams (None = any)."""

    work_types: frozenset[str] | None = None
    teams: frozenset[str] | None = None

    def accepts(self, work_type: str, team: str | None) -> bool:
        if self.work_types is not None and work_type not in self.work_types:
            return False
        return self.teams is None or team in self.teams


ANY = ClaimFilter()


@dataclass(slots=True)
class StoreStats:
    """Counts for dashboards; cheap to compute from the in-memory state."""

    by_status: dict[str, int] = field(default_factory=dict)
    agents: int = 0


class Store(Protocol):
    """The coordination store contract.

    ``agent_id=None`` on an item operation means an operator acting from the CLI
    without ``AGENT_ID``: the holder check is skipped, the state checks are not.
    """

    path: str  # where it lives, for messages (a DSN without its password)

    def register(self, agent: Agent) -> Agent: ...

    def heartbeat(self, agent_id: str) -> int:
        """Refresh the agent and extend the leases it holds; return how many."""
        ...

    def deregister(self, agent_id: str) -> Agent: ...

    def get_agent(self, agent_id: str) -> Agent: ...

    def list_agents(self) -> list[Agent]: ...

    def add_work(self, item: WorkItem) -> str: ...

    def add_many(self, items: Sequence[WorkItem]) -> list[str]:
        """Enqueue several items at once (all or none)."""
        ...

    def claim(
        self, agent_id: str, filters: ClaimFilter = ANY, lease_s: float | None = None
    ) -> WorkItem | None: ...

    def claim_new(self, agent_id: str, item: WorkItem) -> WorkItem: ...

    def progress(
        self, work_id: str, percent: int, status: str = IN_PROGRESS, agent_id: str | None = None
    ) -> WorkItem: ...

    def complete(
        self,
        work_id: str,
        status: str = "success",
        points: int | None = None,
        result: Any = None,
        agent_id: str | None = None,
    ) -> WorkItem: ...

    def fail(
        self, work_id: str, error: str, agent_id: str | None = None, retry: bool = False
    ) -> WorkItem: ...

    def release(self, work_id: str, agent_id: str | None = None) -> WorkItem: ...

    def release_agent(self, agent_id: str) -> list[WorkItem]:
        """Return every item the (dead) agent holds to the queue, counting an attempt."""
        ...

    def get(self, work_id: str) -> WorkItem: ...

    def list_work(self, include_terminal: bool = True) -> list[WorkItem]: ...

    def sweep(self) -> list[WorkItem]:
        """Apply expired leases now; return the items that changed."""
        ...

    def compact(self) -> int:
        """Housekeeping; return how many finished items were archived."""
        ...

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Idle until work may be available, ``timeout`` passes or ``stop`` is set."""
        ...

    def close(self) -> None: ...
