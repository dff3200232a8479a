"""SwarmSH's coordination commands over the store: register, claim, progress, complete,
list-work, dashboard and the rest of ``coordination_helper.sh``."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from orchestrator.cli import items, render
from orchestrator.cli.options import AgentIdOpt, JsonFlag, QuietFlag, context_of
from orchestrator.compat import registration
from orchestrator.errors import InvalidArgument, NotFound
from orchestrator.ids import nanosecond_agent_id, new_work_id
from orchestrator.item_input import choice, parents_of
from orchestrator.records import (
    AGENT_STATUSES,
    Agent,
    ClaimFilter,
    includes_finished,
)

commands = typer.Typer()


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


# -- agents ----------------------------------------------------------------------------


@commands.command()
def register(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="CAPACITY STATUS SPECIALIZATION",
            help="Capacity 0-100, active or inactive, what this agent is good at. SwarmSH's"
            " script form works too: AGENT_ID [TEAM] [CAPACITY] [SPECIALIZATION].",
        ),
    ],
    team: Annotated[str | None, typer.Option(help="Team the agent belongs to.")] = None,
    role: Annotated[
        str | None, typer.Option(envvar="AGENT_ROLE", help="Role [env AGENT_ROLE].")
    ] = None,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Register an agent (AGENT_ID, or a new id that is printed)."""
    form = registration(args, team)
    choice(form.status, AGENT_STATUSES, "agent status")
    agent = Agent(
        agent_id=context_of(ctx).agent_id(form.agent_id or agent_id),
        capacity=form.capacity,
        status=form.status,
        specialization=form.specialization,
        team=form.team,
        role=role,
        host=os.environ.get("SWARM_HOST_ID") or os.uname().nodename,  # = gethostname()
        pid=os.getppid(),
    )
    record = context_of(ctx).store().register(agent)
    if as_json:
        render.emit_json(record.to_dict())
    else:
        render.echo(
            f"Registered {record.agent_id} ({form.specialization}, capacity {form.capacity})"
        )


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
    context = context_of(ctx)
    if not next_item:
        items.claim_new(
            context,
            work_type,
            description,
            priority,
            team,
            payload=payload,
            agent_id=agent_id,
            as_json=as_json,
            quiet=quiet,
        )
        return
    if work_type or description:
        raise InvalidArgument("--next takes no work type or description; use --type/--team")
    filters = ClaimFilter(
        work_types=frozenset(types) if types else None,
        teams=frozenset(teams) if teams else None,
    )
    items.claim_next(
        context, filters, agent_id=agent_id, as_json=as_json, quiet=quiet, intelligent=intelligent
    )


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
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="ID_OR_KEY[,…]",
            help="Wait for these items (ids or keys) to complete first; repeatable.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Enqueue a pending work item for agents to claim (once per --key); with --after it
    is blocked until those items complete."""
    items.add(
        context_of(ctx),
        work_type,
        description,
        priority,
        team,
        payload=payload,
        key=key,
        parents=parents_of(after),
        as_json=as_json,
        quiet=quiet,
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
    items.progress(context_of(ctx), work_id, percent, status, agent_id=agent_id, as_json=as_json)


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
    items.complete(
        context_of(ctx),
        work_id,
        status,
        story_points,
        result=result,
        agent_id=agent_id,
        as_json=as_json,
    )


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
    items.show_item(item, as_json, False, "Failed")


@commands.command()
def release(
    ctx: typer.Context,
    work_id: Annotated[str, typer.Argument(help="Work item id.")],
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Give a held item back to the queue."""
    item = context_of(ctx).store().release(work_id, agent_id)
    items.show_item(item, as_json, False, "Released")


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
    as_tree: Annotated[
        bool, typer.Option("--tree", help="Draw items under their parents (pipelines).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List work items (live ones unless --all or a filter asks for finished ones)."""
    context = context_of(ctx)
    store = context.existing_store()
    if store is None:
        _show_no_store(context.store_target, [], as_json)
        return
    finished = includes_finished(show_all, [filter_] if filter_ else None)
    items = store.list_work(include_terminal=finished)
    if filter_:
        items = [i for i in items if filter_ in (i.status, i.work_type, i.priority, i.team)]
    if as_json:
        render.emit_json([i.to_dict() for i in items])
    elif as_tree:
        from orchestrator.pipeline_view import tree

        render.echo("\n".join(tree(items)) or "0 work item(s)")
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
    items, agents = store.list_work(), store.list_agents()
    data = render.dashboard_data(store.path, items, agents)
    if as_json:
        render.emit_json(data)
    else:
        from orchestrator.cli.swarmsh import scrum_dashboard

        render.echo(scrum_dashboard(items, agents))  # SwarmSH's sections first, as it had them
        render.dashboard(data)


@commands.command("generate-id")
def generate_id(
    work: Annotated[bool, typer.Option("--work", help="A work id instead.")] = False,
    agent: Annotated[
        bool, typer.Option("--agent", hidden=True, help="An agent id (the default).")
    ] = False,
) -> None:
    """Print a new agent id, agent_<nanoseconds> as SwarmSH's (--work: work_<ns>_<hex>)."""
    if work and agent:
        raise InvalidArgument("generate-id: give --work or --agent, not both")
    render.echo(new_work_id() if work else nanosecond_agent_id())


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
