"""Options several commands share, and the context every command reads."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.context import Context

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the work id.")]
AgentIdOpt = Annotated[
    str | None,
    typer.Option(
        "--agent-id",
        envvar="AGENT_ID",
        help="Acting agent [env AGENT_ID]. Without it, item commands act as an operator"
        " (no holder check).",
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        "-w",
        help="Spans that ended within: 24h, 7d, all, or any number with s/m/h/d/w"
        " [default: TELEMETRY_WINDOW, else 24h].",
    ),
]


def context_of(ctx: typer.Context) -> Context:
    """The ``Context`` the global options resolved to (set up by the root callback)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj
