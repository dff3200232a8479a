"""The restart rule on its own: policy, backoff, the restart window, fatal."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.config import AgentGroup
from orchestrator.slots import HEALTHY_AFTER_S, SlotState, decide_restart


def group(**policy: Any) -> AgentGroup:
    base: dict[str, Any] = {
        "name": "g",
        "restart": "on-failure",
        "backoff_initial_s": 0.5,
        "backoff_max_s": 4.0,
        "max_restarts": 3,
        "restart_window_s": 60.0,
    }
    return AgentGroup(**(base | policy))


def decide(g: AgentGroup, exit_code: int | None, **history: Any) -> Any:
    args: dict[str, Any] = {
        "now": 1000.0,
        "started_at": 999.0,
        "restart_times": (),
        "failures_in_row": 0,
    }
    return decide_restart(g, exit_code=exit_code, **(args | history))


@pytest.mark.parametrize(
    ("restart", "exit_code", "state"),
    [
        ("never", 1, SlotState.EXITED),
        ("never", 0, SlotState.EXITED),
        ("on-failure", 0, SlotState.EXITED),
        ("on-failure", 1, SlotState.BACKOFF),
        ("on-failure", -9, SlotState.BACKOFF),  # killed by a signal
        ("always", 0, SlotState.BACKOFF),
        ("always", 3, SlotState.BACKOFF),
    ],
)
def test_the_policy_decides_whether_to_restart(restart: str, exit_code: int, state: Any) -> None:
    assert decide(group(restart=restart), exit_code).state == state


def test_backoff_doubles_with_each_quick_failure_up_to_the_maximum() -> None:
    g = group()
    delays, in_row = [], 0
    for n in range(6):
        d = decide(g, 1, now=1000.0 + n, started_at=999.5 + n, failures_in_row=in_row)
        delays.append(d.delay_s)
        in_row = d.failures_in_row
        assert d.state == SlotState.BACKOFF and d.recent_restarts == (1000.0 + n,)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_scales_the_delay() -> None:
    assert decide(group(), 1, failures_in_row=1, jitter=0.5).delay_s == pytest.approx(0.5)


def test_an_agent_that_ran_long_enough_starts_its_backoff_over() -> None:
    healthy = decide(group(), 1, started_at=1000.0 - HEALTHY_AFTER_S, failures_in_row=5)
    assert (healthy.failures_in_row, healthy.delay_s) == (1, 0.5)
    quick = decide(group(), 1, started_at=1000.0 - HEALTHY_AFTER_S + 1, failures_in_row=5)
    assert quick.failures_in_row == 6 and quick.delay_s == 4.0


def test_too_many_restarts_within_the_window_is_fatal() -> None:
    g = group(max_restarts=3, restart_window_s=60.0)
    fatal = decide(g, 1, restart_times=(950.0, 960.0, 970.0))
    assert fatal.state == SlotState.FATAL
    # Restarts older than the window no longer count, and are dropped from the history.
    again = decide(g, 1, restart_times=(900.0, 960.0, 970.0))
    assert again.state == SlotState.BACKOFF
    assert again.recent_restarts == (960.0, 970.0, 1000.0)


def test_max_restarts_zero_never_restarts_a_failing_agent() -> None:
    assert decide(group(max_restarts=0), 1).state == SlotState.FATAL
