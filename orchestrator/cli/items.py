"""The item commands scripts run once per operation (claim, add, progress, complete):
their checks, their store call and their output, free of typer.

Both ways into them call these functions: the typer commands of ``work.py`` (every
option, ``--help``) and ``quick.py``, which parses SwarmSH's plain positional forms
without importing typer at all.
"""

from __future__ import annotations

from orchestrator.cli import render
from orchestrator.context import Context
from orchestrator.errors import InvalidArgument, NotFound
from orchestrator.item_input import choice, new_item
from orchestrator.records import COMPLETE_STATUSES, PROGRESS_STATUSES, ClaimFilter, WorkItem


def show_item(item: WorkItem, as_json: bool, quiet: bool, verb: str) -> None:
    if as_json:
        render.emit_json(item.to_dict())
    elif quiet:
        render.echo(item.work_item_id)
    else:
        holder = f" by {item.agent_id}" if item.agent_id else ""
        render.echo(
            f"{verb} {item.work_item_id} ({item.work_type}, {item.priority}){holder}"
            f" — {item.status} {item.progress}%"
        )


def claim_new(
    context: Context,
    work_type: str | None = None,
    description: str | None = None,
    priority: str = "medium",
    team: str | None = None,
    *,
    payload: str | None = None,
    agent_id: str | None = None,
    as_json: bool = False,
    quiet: bool = False,
) -> None:
    """SwarmSH's ``claim``: create the item and claim it at once."""
    if not work_type or not description:
        raise InvalidArgument("claim needs <work_type> <description> (or --next)")
    item = new_item(work_type, description, priority, team, payload)
    store = context.store()
    show_item(store.claim_new(context.agent_id(agent_id), item), as_json, quiet, "Claimed")


def claim_next(
    context: Context,
    filters: ClaimFilter,
    *,
    agent_id: str | None = None,
    as_json: bool = False,
    quiet: bool = False,
    intelligent: bool = False,
) -> None:
    """``claim --next``: the next pending item the filters allow (``--intelligent``: the
    [intelligence] model's pick among the first few)."""
    store = context.store()
    agent = context.agent_id(agent_id)
    if intelligent:
        from orchestrator.intelligence.claiming import claim_for

        item = claim_for(context, store, agent, filters)
    else:
        item = store.claim(agent, filters)
    if item is None:
        if as_json:
            render.emit_json(None)
        raise NotFound("no pending work item matches")
    show_item(item, as_json, quiet, "Claimed")


def add(
    context: Context,
    work_type: str,
    description: str,
    priority: str = "medium",
    team: str | None = None,
    *,
    payload: str | None = None,
    key: str | None = None,
    parents: list[str] | None = None,
    as_json: bool = False,
    quiet: bool = False,
) -> None:
    """Enqueue a pending item, once per key; with parents, blocked until they complete."""
    item = new_item(work_type, description, priority, team, payload, key, parents)
    store = context.store()
    # The store answers with our id when it stored our item, else the key holder's.
    stored = store.get(store.add_work(item))
    if stored.work_item_id == item.work_item_id or as_json or quiet:
        show_item(stored, as_json, quiet, "Added")
    else:
        # Not an error: a script that adds its work on every run may run again.
        render.echo(
            f"key {key!r} already present: {stored.work_item_id}"
            f" ({stored.work_type}, {stored.status}); nothing added"
        )


def progress(
    context: Context,
    work_id: str,
    percent: int,
    status: str = "in_progress",
    *,
    agent_id: str | None = None,
    as_json: bool = False,
) -> None:
    """Report progress; ``pending`` releases the item and ``completed`` finishes it."""
    choice(status, PROGRESS_STATUSES, "progress status")
    if not 0 <= percent <= 100:
        raise InvalidArgument(f"progress {percent} is out of range: use 0-100")
    store = context.store()
    if status == "pending":
        item = store.release(work_id, agent_id)
    elif status == "completed":
        item = store.complete(work_id, "success", agent_id=agent_id)
    else:
        item = store.progress(work_id, percent, status, agent_id)
    show_item(item, as_json, False, "Updated")


def complete(
    context: Context,
    work_id: str,
    status: str = "success",
    story_points: int | None = None,
    *,
    result: str | None = None,
    agent_id: str | None = None,
    as_json: bool = False,
) -> None:
    """Finish a held item."""
    choice(status, COMPLETE_STATUSES, "completion status")
    item = context.store().complete(work_id, status, story_points, result, agent_id)
    show_item(item, as_json, False, "Completed")
