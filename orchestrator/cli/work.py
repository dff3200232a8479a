"""SwarmSH's coordination commands over the store: register, claim, progress, complete,
list-work, dashboard and the rest of ``coordination_helper.sh``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import orjson
import typer

from orchestrator.cli import render
from orchestrator.cli.options import AgentIdOpt, JsonFlag, QuietFlag, context_of
from orchestrator.errors import InvalidArgument, NotFound
from orchestrator.ids import new_agent_id, new_work_id
from orchestrator.records import (
    AGENT_STATUSES,
    COMPLETE_STATUSES,
    PRIORITIES,
    PROGRESS_STATUSES,
    TERMINAL_STATUSES,
    Agent,
    ClaimFilter,
    WorkItem,
)

commands = typer.Typer()


def _payload(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"--payload is not valid JSON: {exc}") from None


def _choice(value: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _no_store(target: str) -> str:
    return f"no store at {target} (nothing has been enqueued here yet)"


def _show_no_store(target: str, empty: Any, as_json: bool) -> None:
    """What a read-only command shows when the store was never created: exit 0, as for an
    empty store (scripts get the empty JSON), and for people, where it looked. It never
    creates the store: an empty one left in whatever folder it ran in would hide the
    real one from the next command run there."""
    if as_json:
        render.emit_json(empty)
    else:
        render.echo(_no_store(target))


def _show_item(item: WorkItem, as_json: bool, quiet: bool, verb: str) -> None:
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


# -- agents ----------------------------------------------------------------------------


@commands.command()
def register(
    ctx: typer.Context,
    capacity: Annotated[int, typer.Argument(help="Capacity 0-100.")],
    status: Annotated[str, typer.Argument(help="active or inactive.")],
    specialization: Annotated[str, typer.Argument(help="What this agent is good at.")],
    team: Annotated[str | None, typer.Option(help="Team the agent belongs to.")] = None,
    role: Annotated[
        str | None, typer.Option(envvar="AGENT_ROLE", help="Role [env AGENT_ROLE].")
    ] = None,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an agent (AGENT_ID, or a new id that is printed)."""
    _choice(status, AGENT_STATUSES, "agent status")
    agent = Agent(
        agent_id=context_of(ctx).agent_id(agent_id),
        capacity=capacity,
        status=status,
        specialization=specialization,
        team=team,
        role=role,
        host=os.environ.get("SWARM_HOST_ID") or os.uname().nodename,  # = gethostname()
        pid=os.getppid(),
    )
    record = context_of(ctx).store().register(agent)
    if as_json:
        render.emit_json(record.to_dict())
    else:
        render.echo(f"Registered {record.agent_id} ({specialization}, capacity {capacity})")


@commands.command()
def deregister(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(help="Agent to remove.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove an agent; items it still holds go back to the queue."""
    record = context_of(ctx).store().deregister(agent_id)
    if as_json:
        render.emit_json(record.to_dict())
    else:
        render.echo(f"Deregistered {agent_id}")


@commands.command("agent-status")
def agent_status(
    ctx: typer.Context,
    agent_id: Annotated[str | None, typer.Argument(help="One agent; all if omitted.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show registered agents and the items they hold."""
    context = context_of(ctx)
    store = context.existing_store()
    if store is None:
        if agent_id:
            raise NotFound(f"unknown agent {agent_id}: {_no_store(context.store_target)}")
        _show_no_store(context.store_target, [], as_json)
        return
    agents = [store.get_agent(agent_id)] if agent_id else store.list_agents()
    holding: dict[str, list[str]] = {}
    for item in store.list_work(include_terminal=False):
        if item.held and item.agent_id:
            holding.setdefault(item.agent_id, []).append(item.work_item_id)
    if as_json:
        rows = [a.to_dict() | {"holding": holding.get(a.agent_id, [])} for a in agents]
        render.emit_json(rows[0] if agent_id else rows)
    else:
        render.agent_table(agents, holding)


# -- work ------------------------------------------------------------------------------


@commands.command()
def claim(
    ctx: typer.Context,
    work_type: Annotated[str | None, typer.Argument(help="e.g. feature, bug_fix.")] = None,
    description: Annotated[str | None, typer.Argument(help="What is to be done.")] = None,
    priority: Annotated[str, typer.Argument(help="critical, high, medium or low.")] = "medium",
    team: Annotated[str | None, typer.Argument(help="Team owning the item.")] = None,
    next_item: Annotated[
        bool, typer.Option("--next", help="Claim the next pending item instead of creating one.")
    ] = False,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="With --next: only these work types.")
    ] = None,
    teams: Annotated[
        list[str] | None, typer.Option("--team", help="With --next: only these teams.")
    ] = None,
    payload: Annotated[str | None, typer.Option(help="JSON payload for the item.")] = None,
    intelligent: Annotated[
        bool,
        typer.Option(
            "--intelligent",
            help="With --next: the [intelligence] model picks among the top pending items"
            " (priority order when it cannot answer).",
        ),
    ] = False,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Create a work item and claim it at once (as SwarmSH), or claim the next one (--next)."""
    store = context_of(ctx).store()
    agent = context_of(ctx).agent_id(agent_id)
    if next_item:
        if work_type or description:
            raise InvalidArgument("--next takes no work type or description; use --type/--team")
        filters = ClaimFilter(
            work_types=frozenset(types) if types else None,
            teams=frozenset(teams) if teams else None,
        )
        if intelligent:
            from orchestrator.intelligence.claiming import claim_for

            item = claim_for(context_of(ctx), store, agent, filters)
        else:
            item = store.claim(agent, filters)
        if item is None:
            if as_json:
                render.emit_json(None)
            raise NotFound("no pending work item matches")
        _show_item(item, as_json, quiet, "Claimed")
        return
    if not work_type or not description:
        raise InvalidArgument("claim needs <work_type> <description> (or --next)")
    _choice(priority, list(PRIORITIES), "priority")
    item = store.claim_new(
        agent,
        WorkItem(
            work_item_id=new_work_id(),
            work_type=work_type,
            description=description,
            priority=priority,
            team=team,
            payload=_payload(payload),
        ),
    )
    _show_item(item, as_json, quiet, "Claimed")


@commands.command()
def add(
    ctx: typer.Context,
    work_type: Annotated[str, typer.Argument(help="e.g. feature, bug_fix.")],
    description: Annotated[str, typer.Argument(help="What is to be done.")],
    priority: Annotated[str, typer.Argument(help="critical, high, medium or low.")] = "medium",
    team: Annotated[str | None, typer.Argument(help="Team owning the item.")] = None,
    payload: Annotated[str | None, typer.Option(help="JSON payload for the item.")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Name the work: if an item with this key exists, add nothing."),
    ] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Enqueue a pending work item for agents to claim (once per --key)."""
    _choice(priority, list(PRIORITIES), "priority")
    item = WorkItem(
        work_item_id=new_work_id(),
        work_type=work_type,
        description=description,
        priority=priority,
        team=team,
        payload=_payload(payload),
        key=key,
    )
    store = context_of(ctx).store()
    # The store answers with our id when it stored our item, else the key holder's.
    stored = store.get(store.add_work(item))
    if stored.work_item_id == item.work_item_id or as_json or quiet:
        _show_item(stored, as_json, quiet, "Added")
    else:
        # Not an error: a script that adds its work on every run may run again.
        render.echo(
            f"key {key!r} already present: {stored.work_item_id}"
            f" ({stored.work_type}, {stored.status}); nothing added"
        )


@commands.command()
def progress(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    percent: Annotated[int, typer.Argument(help="0-100.")],
    status: Annotated[
        str, typer.Argument(help="in_progress, blocked, pending (release) or completed.")
    ] = "in_progress",
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Report progress on a held item (extends its lease)."""
    _choice(status, PROGRESS_STATUSES, "progress status")
    store = context_of(ctx).store()
    if not 0 <= percent <= 100:
        raise InvalidArgument(f"progress {percent} is out of range: use 0-100")
    if status == "pending":
        item = store.release(work_id, agent_id)
    elif status == "completed":
        item = store.complete(work_id, "success", agent_id=agent_id)
    else:
        item = store.progress(work_id, percent, status, agent_id)
    _show_item(item, as_json, False, "Updated")


@commands.command()
def complete(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    status: Annotated[str, typer.Argument(help="success, failed or blocked.")] = "success",
    story_points: Annotated[int | None, typer.Argument(help="1-21.")] = None,
    result: Annotated[str | None, typer.Option(help="Result text to keep with the item.")] = None,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Finish a held item."""
    _choice(status, COMPLETE_STATUSES, "completion status")
    item = context_of(ctx).store().complete(work_id, status, story_points, result, agent_id)
    _show_item(item, as_json, False, "Completed")


@commands.command()
def fail(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    reason: Annotated[str, typer.Argument(help="Why it failed.")],
    retry: Annotated[
        bool, typer.Option(help="Put it back in the queue (counts an attempt).")
    ] = False,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark a held item failed."""
    item = context_of(ctx).store().fail(work_id, reason, agent_id, retry=retry)
    _show_item(item, as_json, False, "Failed")


@commands.command()
def release(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Give a held item back to the queue."""
    item = context_of(ctx).store().release(work_id, agent_id)
    _show_item(item, as_json, False, "Released")


@commands.command("list-work")
def list_work(
    ctx: typer.Context,
    filter_: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILTER]", help="Only items whose status, type, priority or team is this."
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include completed, failed and dead items.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Rows in the table; 0 shows them all.", min=0)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List work items (live ones unless --all or a filter asks for finished ones)."""
    context = context_of(ctx)
    store = context.existing_store()
    if store is None:
        _show_no_store(context.store_target, [], as_json)
        return
    finished = filter_ in TERMINAL_STATUSES
    items = store.list_work(include_terminal=show_all or finished)
    if filter_:
        items = [i for i in items if filter_ in (i.status, i.work_type, i.priority, i.team)]
    if as_json:
        render.emit_json([i.to_dict() for i in items])
    else:
        render.work_table(items, limit or len(items), f"{len(items)} work item(s)")


@commands.command()
def dashboard(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Counts by status, agents, who holds what and what comes next."""
    context = context_of(ctx)
    store = context.existing_store()
    if store is None:
        _show_no_store(
            context.store_target, render.dashboard_data(context.store_target, [], []), as_json
        )
        return
    data = render.dashboard_data(store.path, store.list_work(), store.list_agents())
    if as_json:
        render.emit_json(data)
    else:
        render.dashboard(data)


@commands.command("generate-id")
def generate_id(
    agent: Annotated[
        bool, typer.Option("--agent", help="An agent id instead of a work id.")
    ] = False,
) -> None:
    """Print a new unique id (work_<ns>_<hex>, or agent_<ns>_<hex>)."""
    render.echo(new_agent_id() if agent else new_work_id())


@commands.command()
def compact(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Snapshot the store now, archive old finished items, start a new journal."""
    store = context_of(ctx).store()
    archived = store.compact()
    if as_json:
        render.emit_json({"archived": archived, "store": store.path})
    else:
        render.echo(f"Compacted {store.path}: {archived} finished item(s) archived")


db_commands = typer.Typer(help="PostgreSQL store maintenance.", no_args_is_help=True)
commands.add_typer(db_commands, name="db")


@db_commands.command("migrate")
def db_migrate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Apply the PostgreSQL schema migrations not applied yet (swarm up does it too)."""
    store = context_of(ctx).store()
    migrate = getattr(store, "migrate", None)
    if migrate is None:
        raise InvalidArgument(
            "swarm db migrate needs a PostgreSQL store: --store postgresql://… or"
            ' [store] backend = "postgres" in swarm.toml'
        )
    version = migrate()
    if as_json:
        render.emit_json({"store": store.path, "version": version})
    else:
        render.echo(f"{store.path}: schema at version {version}")
