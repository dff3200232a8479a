"""Stopping and starting an agent group's slots on the operator's word
(`swarm stop|start|restart GROUP`), apart from the restart policy: a slot stopped
here stays stopped until it is started again."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from orchestrator import processes
from orchestrator.slots import Slot, SlotState

logger = logging.getLogger("orchestrator.supervisor")

# After a slot is killed for not stopping in time, wait this long before killing again:
# the supervisor reaps it on a later tick.
_KILLED_ONCE_S = 3600.0


class GroupControl:
    def __init__(self, slots: dict[str, Slot], spawn: Callable[[Slot], None]) -> None:
        self.slots = slots
        self.spawn = spawn

    def stop(self, slot: Slot, now: float, then_start: bool) -> None:
        """Warm stop (SIGTERM, killed after the group's stop_timeout_s); ``then_start``
        spawns it again once it has exited (restart)."""
        slot.start_after_stop = then_start
        if slot.state == SlotState.RUNNING:
            if slot.stopping_until is None:
                slot.stopping_until = now + slot.group.stop_timeout_s
                processes.signal_agent(slot, signal.SIGTERM)
        elif then_start:
            self.start(slot)
        else:
            slot.state = SlotState.STOPPED

    def start(self, slot: Slot) -> None:
        slot.start_after_stop = False
        if slot.state == SlotState.RUNNING:
            return
        # A fresh start: the restart history that made it fatal is forgotten.
        slot.restart_times.clear()
        slot.failures_in_row = 0
        self.spawn(slot)

    def enforce_deadlines(self, now: float) -> None:
        """Respawn restarted slots that have exited; kill those past their stop timeout."""
        for slot in self.slots.values():
            if slot.state == SlotState.STOPPED and slot.start_after_stop:
                self.start(slot)
            elif slot.stopping_until is not None and now >= slot.stopping_until:
                logger.warning(
                    "%s did not stop within %gs: killing it", slot.name, slot.group.stop_timeout_s
                )
                slot.stopping_until = now + _KILLED_ONCE_S
                processes.kill_tree(slot)
