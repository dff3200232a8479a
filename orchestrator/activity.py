"""What the agents are doing, as the supervisor learns it from their event pipes: the
item each one works on, recent completions (for throughput) and the last failures.

Each agent has its own pipe (see ``agents.loop.AgentRunner._notify``); events are
``(kind, work_id, detail, at)`` with kind one of claimed, completed, retrying, dead,
released, lost. The supervisor logs item failures here, so that its log (and the
detached supervisor's file) tells what went wrong without reading the store.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestrator.slots import Slot

logger = logging.getLogger("orchestrator.supervisor")

THROUGHPUT_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    slot: str
    work_id: str
    status: str  # retrying or dead
    error: str


class Activity:
    def __init__(self, keep_failures: int = 20) -> None:
        self.failures: deque[Failure] = deque(maxlen=keep_failures)
        self.completions: deque[float] = deque()

    def drain(self, slot: Slot) -> None:
        """Read every event the slot's agent has sent so far (never blocks)."""
        conn = slot.events
        if conn is None:
            return
        try:
            while conn.poll():
                self.apply(slot, conn.recv())
        except (EOFError, OSError):
            # The agent exited (or was killed mid-send): nothing more will come.
            conn.close()
            slot.events = None

    def apply(self, slot: Slot, event: Any) -> None:
        try:
            kind, work_id, detail, at = event
        except (TypeError, ValueError):
            logger.warning("%s sent an event that is not understood: %r", slot.name, event)
            return
        if kind == "claimed":
            slot.current = (str(work_id), str(detail or ""), float(at))
            return
        slot.current = None
        if kind == "completed":
            self.completions.append(float(at))
        elif kind in ("retrying", "dead"):
            error = _first_line(detail)
            self.failures.append(Failure(float(at), slot.name, str(work_id), kind, error))
            if kind == "dead":
                logger.warning("%s: %s is dead (out of attempts): %s", slot.name, work_id, error)
            else:
                logger.info("%s: %s failed, will be retried: %s", slot.name, work_id, error)

    def agent_exited(self, slot: Slot) -> None:
        self.drain(slot)
        if slot.events is not None:
            slot.events.close()
            slot.events = None
        slot.current = None

    def throughput(self, now: float | None = None) -> float:
        """Items completed per second over the last minute."""
        now = time.time() if now is None else now
        while self.completions and self.completions[0] < now - THROUGHPUT_WINDOW_S:
            self.completions.popleft()
        return len(self.completions) / THROUGHPUT_WINDOW_S

    def recent_failures(self, n: int = 5) -> list[dict[str, Any]]:
        return [
            {
                "at": f.at,
                "agent": f.slot,
                "work_item_id": f.work_id,
                "status": f.status,
                "error": f.error,
            }
            for f in list(self.failures)[-n:][::-1]
        ]


def _first_line(detail: Any) -> str:
    text = str(detail or "failed").strip()
    return (text.splitlines() or ["failed"])[0][:300]
