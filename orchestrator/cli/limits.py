"""`swarm limits` and `swarm cost`: the swarm's shared limits, budgets and spending."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of

commands = typer.Typer()


@commands.command()
def limits(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Each limit: used/available per figure, in flight, waiting agents, 429s in the
    last minute, seconds to the next reset; each budget: spent and maximum."""
    from orchestrator.limits import status

    context = context_of(ctx)
    config = context.require_config()
    store = context.existing_store()  # looking never creates a store, nor records spans
    data = status(store, config) if store is not None else {"limits": [], "budgets": []}
    if as_json:
        render.emit_json(data)
        return
    for line in render.limit_lines(data):
        render.echo(line)


@commands.command()
def cost(
    ctx: typer.Context,
    by: Annotated[
        str, typer.Option("--by", help="Totals per group, model, agent or day.")
    ] = "group",
    window: Annotated[
        str, typer.Option("--window", "-w", help="Calls within: 24h, 7d, all, … [default: all].")
    ] = "all",
    as_json: JsonFlag = False,
) -> None:
    """Tokens and cost of the LLM calls in the ledger, with throttled waits."""
    from orchestrator.ledger import cost_report
    from orchestrator.telemetry.settings import parse_window

    context = context_of(ctx)
    window_s = parse_window(window)
    store = context.existing_store()
    report = cost_report(store.ledger() if store is not None else [], by, window_s)
    if as_json:
        render.emit_json(report)
        return
    render.cost_table(report)
