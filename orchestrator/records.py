"""The records every layer shares: work items, agents, claim filters and statuses.

Plain dataclasses with no I/O, so that they serialise straight to the JSON files
SwarmSH users read with ``jq``. The store, the agent backends, the renderers and the
telemetry all import them from here; nothing here imports any of them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from orchestrator.ids import new_work_id


class WorkStatus(enum.StrEnum):
    """Where a work item is in its life. Values are the strings stored and printed."""

    PENDING = "pending"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


# Claim order: lower rank first.
PRIORITIES: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

HELD_STATUSES = frozenset({WorkStatus.CLAIMED, WorkStatus.IN_PROGRESS, WorkStatus.BLOCKED})
TERMINAL_STATUSES = frozenset(
    {WorkStatus.COMPLETED, WorkStatus.FAILED, WorkStatus.DEAD, WorkStatus.CANCELLED}
)
# A parent that ends in one of these cancels its descendants (see store/pipeline.py).
GAVE_UP_STATUSES = TERMINAL_STATUSES - {WorkStatus.COMPLETED}
ACTIVE_STATUSES = HELD_STATUSES | {WorkStatus.PENDING}
ALL_STATUSES = frozenset(WorkStatus)

# What `swarm progress` accepts (SwarmSH's list): pending releases the item,
# completed completes it with status success.
PROGRESS_STATUSES = ("in_progress", "blocked", "pending", "completed")
# What `swarm complete` accepts; success -> completed, failed/blocked -> failed.
COMPLETE_STATUSES = ("success", "failed", "blocked")
AGENT_STATUSES = ("active", "inactive")

STORY_POINTS_RANGE = (1, 21)


def out_of_attempts(attempts: int, max_attempts: int) -> bool:
    """The one rule for giving up: an item whose counted attempts (crashes, expired
    leases, retried failures) reach ``max_attempts`` is dead instead of pending.

    The file store applies it in ``store.state.returned``; the PostgreSQL store mirrors
    it in SQL (``attempts + 1 >= max_attempts``, in ``pg_sql`` and migration 0002);
    ``tests/test_store_contract.py`` checks both against this function.
    """
    return attempts >= max_attempts


@dataclass
class WorkItem:
    """One unit of work. Times are Unix epoch seconds (``jq 'todate'`` shows them).

    ``key``, when set, names the work rather than this copy of it: a store holds at
    most one item per key among the items it has not archived, so enqueueing the same
    keyed work again (a restarted ``swarm up``, a retried ``swarm add --key``) finds
    the item already there instead of adding a second one.
    """

    work_item_id: str
    work_type: str
    description: str
    priority: str = "medium"
    team: str | None = None
    status: str = WorkStatus.PENDING
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
    # Last, and with a default that is also a class attribute: records written before
    # keys existed (journal lines replayed without __init__) read as key None.
    key: str | None = None
    # The ids of the items this one waits for (given as ids or keys at enqueue): it is
    # ``blocked`` with no holder until all of them are completed (store/pipeline.py).
    parents: list[str] | None = None

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
        # An item blocked on its parents has no holder: it is waiting, not held.
        return self.status in HELD_STATUSES and self.agent_id is not None

    @property
    def waiting(self) -> bool:
        """Blocked on its parents (an agent's ``progress … blocked`` keeps its holder)."""
        return self.status == WorkStatus.BLOCKED and self.agent_id is None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def list_order(item: WorkItem) -> tuple[int, float, str]:
    """list-work's order, the one every listing of items follows (the file store's
    ``list_work``, the HTTP API's listing): priority, then oldest first, then the id.
    PostgreSQL sorts in SQL: ``pg_sql.LIST_ORDER`` mirrors this (ids are ASCII, compared
    there in the "C" collation: code points, as here)."""
    return (PRIORITIES.get(item.priority, 9), item.created_at, item.work_item_id)


def includes_finished(include_all: bool, statuses: Iterable[str] | None) -> bool:
    """list-work's rule for finished items: listed when asked for (``--all``), or when
    the filter names a finished status."""
    return include_all or any(s in TERMINAL_STATUSES for s in statuses or ())


def with_id(item: WorkItem) -> WorkItem:
    """The item, with a generated id when it has none."""
    return item if item.work_item_id else item.evolve(work_item_id=new_work_id())


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


class ClaimFilter(NamedTuple):
    """Restrict a claim to some work types and/or teams (None = any). A NamedTuple: a
    frozen dataclass would compile its methods in every process at import."""

    work_types: frozenset[str] | None = None
    teams: frozenset[str] | None = None

    def accepts(self, work_type: str, team: str | None) -> bool:
        if self.work_types is not None and work_type not in self.work_types:
            return False
        return self.teams is None or team in self.teams


ANY = ClaimFilter()


class WorkFilter(NamedTuple):
    """Which items a listing shows: each set restricts one field (None = any), and
    finished items are left out unless ``includes_finished`` says otherwise."""

    statuses: frozenset[str] | None = None
    work_types: frozenset[str] | None = None
    teams: frozenset[str] | None = None
    priorities: frozenset[str] | None = None
    include_all: bool = False

    @property
    def include_terminal(self) -> bool:
        return includes_finished(self.include_all, self.statuses)

    @property
    def narrowed(self) -> bool:
        """Whether a field is restricted (beyond live or all)."""
        return any(f is not None for f in self[:4])

    def accepts(self, item: WorkItem) -> bool:
        return (
            (self.include_terminal or not item.terminal)
            and (self.statuses is None or item.status in self.statuses)
            and (self.work_types is None or item.work_type in self.work_types)
            and (self.teams is None or item.team in self.teams)
            and (self.priorities is None or item.priority in self.priorities)
        )
