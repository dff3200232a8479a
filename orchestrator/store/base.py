"""The store contract: the ``Store`` protocol every backend implements.

Every backend (the file journal, PostgreSQL) implements ``Store`` and passes the one
contract suite in ``tests/test_store_contract.py``. The records it stores live in
``orchestrator.records``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.records import ANY, Agent, ClaimFilter, WorkItem, WorkStatus


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
        self,
        work_id: str,
        percent: int,
        status: str = WorkStatus.IN_PROGRESS,
        agent_id: str | None = None,
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
