"""An agent killed with kill -9 while counting an item never stops the supervisor:
the counts it shares with the supervisor hold no lock the agent could die holding."""

from __future__ import annotations

import os
import signal
import threading
from types import SimpleNamespace
from typing import Any

import multiprocess

from agents.loop import AgentRunner
from orchestrator.config import AgentGroup
from orchestrator.slots import Slot, shared_counters

from .conftest import wait_for


def _count_until_killed(counters: Any) -> None:
    runner = SimpleNamespace(counters=counters)
    while True:
        AgentRunner._count(runner, 0)  # type: ignore[arg-type]  # the agent's own code


def _read_within(slot: Slot, timeout: float) -> int | None:
    """The slot's count as the supervisor reads it, or None when the read is stuck."""
    found: list[int] = []
    reader = threading.Thread(target=lambda: found.append(slot.items_done), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


def test_an_agent_killed_while_counting_never_blocks_the_supervisor() -> None:
    ctx = multiprocess.get_context("fork")
    for _ in range(20):
        slot = Slot(group=AgentGroup(name="w", backend="command"), index=0)
        slot.counters = shared_counters(ctx)
        agent = ctx.Process(target=_count_until_killed, args=(slot.counters,), daemon=True)
        agent.start()
        wait_for(lambda: slot.counters[0] > 1000, timeout=30)  # noqa: B023
        os.kill(agent.pid, signal.SIGKILL)
        agent.join()
        assert agent.exitcode == -signal.SIGKILL
        done = _read_within(slot, timeout=10)
        assert done is not None, "the supervisor's read of the counts is stuck"
        assert done > 1000
