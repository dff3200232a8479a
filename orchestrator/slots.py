"""One agent position of a group (``group-N``) and the rule that decides its restarts.

``decide_restart`` is a pure function of the group's policy and the slot's history, so
that the policy (supervisord's: ``never | on-failure | always``, exponential backoff
with jitter, at most ``max_restarts`` within ``restart_window_s`` or the slot is
fatal) is tested on its own, without processes; ``apply_restart_policy`` carries
out its decision on a slot.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from orchestrator.config import AgentGroup

logger = logging.getLogger("orchestrator.supervisor")  # the supervisor's log, as it acts

# A respawned agent that ran this long is healthy again: its backoff starts over.
HEALTHY_AFTER_S = 10.0


def shared_counters(ctx: Any) -> Any:
    """The array a running agent counts its items in ([done, failed]), read by the
    supervisor. Without a lock: the agent is its only writer, a 32-bit integer is read
    whole, and an agent killed (kill -9) while holding a lock would leave it held, the
    supervisor stopped at its next read for good."""
    return ctx.Array("i", 2, lock=False)


class SlotState(enum.StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"  # waiting to be respawned
    EXITED = "exited"  # ended and its policy says not to restart
    FATAL = "fatal"  # restarted too often within the window
    STOPPED = "stopped"  # stopped by the operator (swarm stop GROUP) until started again


@dataclass
class Slot:
    group: AgentGroup
    index: int
    state: SlotState = SlotState.BACKOFF
    agent_id: str | None = None
    process: Any = None
    pid: int | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    failures_in_row: int = 0
    restart_times: deque[float] = field(default_factory=deque)
    restarts: int = 0
    exit_code: int | None = None
    counters: Any = None  # shared with the running agent: [done, failed]
    done: int = 0  # of the agents that ran in this slot before
    failed: int = 0
    ps: psutil.Process | None = None
    events: Any = None  # the read end of the agent's event pipe
    current: tuple[str, str, float] | None = None  # work id, description, since
    sample: dict[str, Any] = field(default_factory=dict)  # last cpu_percent, rss_bytes, threads
    stopping_until: float | None = None  # asked to stop by the operator: kill after this
    start_after_stop: bool = False  # swarm restart GROUP: spawn again once it has exited

    @property
    def name(self) -> str:
        return f"{self.group.name}-{self.index}"

    @property
    def active(self) -> bool:
        """Running, or about to be respawned."""
        return self.state in (SlotState.RUNNING, SlotState.BACKOFF)

    @property
    def items_done(self) -> int:
        counters = self.counters  # read once: the supervisor's thread may drop it meanwhile
        return self.done + (counters[0] if counters is not None else 0)

    @property
    def items_failed(self) -> int:
        counters = self.counters
        return self.failed + (counters[1] if counters is not None else 0)


@dataclass(frozen=True, slots=True)
class RestartDecision:
    state: SlotState  # BACKOFF (restart after delay_s), EXITED or FATAL
    delay_s: float = 0.0
    failures_in_row: int = 0
    recent_restarts: tuple[float, ...] = ()  # restart times still inside the window


def decide_restart(
    group: AgentGroup,
    *,
    exit_code: int | None,
    now: float,
    started_at: float,
    restart_times: Sequence[float],
    failures_in_row: int,
    jitter: float = 1.0,
) -> RestartDecision:
    """What to do with a slot whose agent just exited.

    ``jitter`` (drawn by the caller from [0.5, 1]) scales the delay, so that the agents
    of a group that fail together do not restart in step.
    """
    failed = exit_code != 0
    if group.restart == "never" or (group.restart == "on-failure" and not failed):
        return RestartDecision(SlotState.EXITED, failures_in_row=failures_in_row)
    recent = tuple(t for t in restart_times if now - t <= group.restart_window_s)
    if len(recent) >= group.max_restarts:
        return RestartDecision(
            SlotState.FATAL, failures_in_row=failures_in_row, recent_restarts=recent
        )
    in_row = 1 if now - started_at >= HEALTHY_AFTER_S else failures_in_row + 1
    delay = min(group.backoff_max_s, group.backoff_initial_s * 2 ** (in_row - 1)) * jitter
    return RestartDecision(
        SlotState.BACKOFF, delay_s=delay, failures_in_row=in_row, recent_restarts=(*recent, now)
    )


def apply_restart_policy(slot: Slot, now: float) -> None:
    """Act on ``decide_restart`` for a slot whose agent just exited: its new state,
    history and restart time, and one log line saying which."""
    group = slot.group
    decision = decide_restart(
        group,
        exit_code=slot.exit_code,
        now=now,
        started_at=slot.started_at,
        restart_times=slot.restart_times,
        failures_in_row=slot.failures_in_row,
        jitter=random.uniform(0.5, 1.0),
    )
    slot.state = decision.state
    slot.failures_in_row = decision.failures_in_row
    slot.restart_times = deque(decision.recent_restarts)
    if decision.state == SlotState.EXITED:
        logger.info(
            "%s exited with %s; not restarted (restart = %s)",
            slot.name,
            slot.exit_code,
            group.restart,
        )
    elif decision.state == SlotState.FATAL:
        logger.error(
            "%s restarted %d times within %gs: fatal, not restarted again",
            slot.name,
            len(decision.recent_restarts),
            group.restart_window_s,
        )
    else:
        slot.restarts += 1
        slot.next_start = now + decision.delay_s
        logger.warning(
            "%s exited with %s; restart %d in %.2fs",
            slot.name,
            slot.exit_code,
            slot.restarts,
            decision.delay_s,
        )
