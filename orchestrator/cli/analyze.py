"""`swarm analyze priorities|assignments|health|team`: the [intelligence] model's
structured reading of the queue (SwarmSH's claude-analyze-* commands)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of

commands = typer.Typer()


@commands.command()
def analyze(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="priorities, assignments, health or team.")],
    apply: Annotated[
        bool, typer.Option("--apply", help="priorities: make the suggested changes.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Ask the [intelligence] model for a structured analysis (schemas in the README) and
    write it to claude_<kind>.json. Without a valid answer the report holds the facts
    and the reason, and the command still succeeds."""
    from orchestrator.intelligence.analysis import run_analysis

    report, path = run_analysis(context_of(ctx), kind, apply)
    if as_json:
        render.emit_json(report)
        return
    analysis = report["analysis"]
    if analysis is None:
        render.echo(f"no analysis ({report['fallback']}); the facts are in {path}")
        return
    render.echo(f"{analysis['summary']}  ({report['model']}, report {path})")
    for key in ("changes", "assignments", "issues", "teams", "bottlenecks", "risks"):
        for entry in analysis.get(key) or []:
            render.echo(f"  - {entry if isinstance(entry, str) else _line(entry)}")
    for change in report.get("applied") or []:
        render.echo(
            f"applied: {change['work_item_id']} {change['current']} -> {change['suggested']}"
        )
    if kind == "priorities" and analysis.get("changes") and not apply:
        render.echo("(suggestions only: --apply makes them)")


def _line(entry: dict[str, object]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in entry.items() if v not in (None, "", []))
