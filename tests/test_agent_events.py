"""What an agent tells its supervisor through its own pipe: small enough for one
write, so a message is never left half sent."""

from __future__ import annotations

import select
from types import SimpleNamespace

import multiprocess

from agents.loop import EVENT_DETAIL_CHARS, AgentRunner
from orchestrator.activity import Activity
from orchestrator.config import AgentGroup
from orchestrator.slots import Slot

PIPE_BUF = getattr(select, "PIPE_BUF", 4096)


def _send_claims(events: object, description: str, times: int) -> None:
    runner = SimpleNamespace(events=events)
    for _ in range(times):
        AgentRunner._notify(runner, "claimed", "work_1", description)  # type: ignore[arg-type]


def test_a_long_description_reaches_the_supervisor_cut_in_one_small_message() -> None:
    ctx = multiprocess.get_context("fork")
    description = "summarise: " + "é€𝄞 " * 30_000  # a long prompt, multi-byte characters
    receive, send = ctx.Pipe(duplex=False)
    agent = ctx.Process(target=_send_claims, args=(send, description, 2), daemon=True)
    agent.start()
    send.close()
    assert receive.poll(30)
    raw = receive.recv_bytes()  # the first message as it crossed the pipe
    assert len(raw) + 4 <= PIPE_BUF  # with its length header: one atomic write

    slot = Slot(group=AgentGroup(name="w", backend="command"), index=0)
    slot.events = receive
    assert receive.poll(30)
    Activity().drain(slot)  # the second, as the supervisor reads it
    agent.join(30)
    assert agent.exitcode == 0
    assert slot.current is not None
    work_id, shown, _ = slot.current
    assert work_id == "work_1"
    assert len(shown) == EVENT_DETAIL_CHARS and shown.endswith("…")
    assert description.startswith(shown[:-1])
