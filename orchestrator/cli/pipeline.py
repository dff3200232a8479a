"""Pipeline commands: ``swarm cancel`` and ``swarm retry`` (``swarm add --after`` and
``swarm list-work --tree`` live with the other work commands)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of
from orchestrator.records import WorkItem

commands = typer.Typer()


def _show(item: WorkItem, as_json: bool, verb: str, descendants: str) -> None:
    if as_json:
        render.emit_json(item.to_dict())
    else:
        render.echo(f"{verb} {item.work_item_id} ({item.work_type}) — {item.status}{descendants}")


@commands.command()
def cancel(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept as the item's error).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel an item that has not ended; the items waiting for it are cancelled too. A
    held item's agent stops at its next heartbeat."""
    item = context_of(ctx).store().cancel(work_id, reason)
    held = " (its agent stops at its next heartbeat)" if item.agent_id else ""
    _show(item, as_json, "Cancelled", held + "; items waiting for it are cancelled too")


@commands.command()
def retry(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    as_json: JsonFlag = False,
) -> None:
    """Put a dead, failed or cancelled item back in the queue, attempts reset; the items
    it cancelled wait for it again."""
    item = context_of(ctx).store().retry(work_id)
    _show(item, as_json, "Retried", "")
