"""What SwarmSH's ``coordination_helper.sh`` had besides the shared commands: its
aliases (``claim-fast``, ``claim-slow``, ``list-work-fast``, ``dashboard-fast``: the
plain commands, which are fast anyway; ``claude-analyze-priorities`` and the other
``claude-*`` analyses: ``swarm analyze``; ``claim-intelligent``), ``help``, and the
sections of its Scrum at Scale dashboard, which ``swarm dashboard`` prints above its
own figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from orchestrator.cli import analyze, items, render, work
from orchestrator.cli.options import AgentIdOpt, JsonFlag, QuietFlag, context_of
from orchestrator.records import PRIORITIES, Agent, ClaimFilter, WorkItem, WorkStatus
from orchestrator.store.views import swarmsh_status

commands = typer.Typer()

ALIASES: dict[str, Callable[..., None]] = {
    "claim-fast": work.claim,
    "claim-slow": work.claim,
    "list-work-fast": work.list_work,
    "dashboard-fast": work.dashboard,
}
for _alias, _command in ALIASES.items():
    commands.command(_alias, help=f"SwarmSH's {_alias}: the same as swarm {_alias[:-5]}.")(_command)


# SwarmSH's Claude analyses, each under both of its names: `swarm analyze KIND`.
ANALYSES = {
    "claude-analyze-priorities": "priorities",
    "claude-priorities": "priorities",
    "claude-optimize-assignments": "assignments",
    "claude-optimize": "assignments",
    "claude-health-analysis": "health",
    "claude-health": "health",
    "claude-team-analysis": "team",
    "claude-team": "team",
}


def _analysis(kind: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        apply: Annotated[
            bool, typer.Option("--apply", help="priorities: make the suggested changes.")
        ] = False,
        as_json: JsonFlag = False,
    ) -> None:
        analyze.analyze(ctx, kind, apply, as_json)

    return command


# Hidden from `swarm --help` (its list stays readable; `swarm analyze` is there), as
# is claim-ai; the README's "Coming from SwarmSH" table lists them.
for _alias, _kind in ANALYSES.items():
    _help = f"SwarmSH's {_alias}: swarm analyze {_kind}."
    commands.command(_alias, help=_help, hidden=True)(_analysis(_kind))


def claim_intelligent(
    ctx: typer.Context,
    work_type: Annotated[str | None, typer.Argument(help="e.g. feature, bug_fix.")] = None,
    description: Annotated[str | None, typer.Argument(help="What is to be done.")] = None,
    priority: Annotated[str, typer.Argument(help="critical, high, medium or low.")] = "medium",
    team: Annotated[str | None, typer.Argument(help="Team owning the item.")] = None,
    agent_id: AgentIdOpt = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """SwarmSH's claim-intelligent: with an item's fields, create and claim it (as claim);
    without, the [intelligence] model's pick of the pending items (claim --next
    --intelligent)."""
    context = context_of(ctx)
    if work_type or description:
        items.claim_new(
            context, work_type, description, priority, team, agent_id=agent_id,
            as_json=as_json, quiet=quiet,
        )  # fmt: skip
    else:
        items.claim_next(
            context, ClaimFilter(), agent_id=agent_id, as_json=as_json, quiet=quiet,
            intelligent=True,
        )  # fmt: skip


commands.command("claim-intelligent")(claim_intelligent)
commands.command("claim-ai", hidden=True)(claim_intelligent)


@commands.command("help")
def help_(ctx: typer.Context) -> None:
    """The list of commands (SwarmSH's `help`)."""
    render.echo(ctx.find_root().get_help())


# Lines of the dashboard before "… N more" (the tables below have the rest).
SHOWN = 20


def _more(lines: list[str], total: int) -> list[str]:
    return lines if total <= SHOWN else [*lines, f"  … {total - SHOWN} more"]


def scrum_dashboard(items: Sequence[WorkItem], agents: Sequence[Agent]) -> str:
    """SwarmSH's dashboard sections with live data (its fixed texts — program
    increment, sprint goal, ceremony dates — are left out: they showed no data)."""
    out = ["🚀 SCRUM AT SCALE DASHBOARD", "============================", ""]
    out.append("👥 AGENT TEAMS & STATUS:")
    out.append(f"  📊 Active Agents: {sum(1 for a in agents if a.status == 'active')}")
    out += _more(
        [f"  🤖 Agent {a.agent_id}: {a.team} team ({a.specialization})" for a in agents[:SHOWN]],
        len(agents),
    )
    teams = Counter(a.team for a in agents)
    if teams:
        out.append("  🏆 Top Teams:")
        out += [f"    🤖 {team}: {n} agents" for team, n in teams.most_common(5)]
    held = sorted(
        (i for i in items if i.held),
        key=lambda i: (PRIORITIES.get(i.priority, 9), i.claimed_at or 0.0, i.work_item_id),
    )
    out += ["", "📋 ACTIVE WORK (CURRENT SPRINT):", f"  📊 Active Work Items: {len(held)}"]
    out += _more(
        [
            f"  🔧 {i.work_item_id}: {i.description} ({i.work_type}, {i.priority})"
            f" [{swarmsh_status(i.status)} {i.progress}%, {i.agent_id}]"
            for i in held[:SHOWN]
        ],
        len(held),
    )
    by_priority = Counter(i.priority for i in held)
    out.append(f"  🔥 Critical Priority: {by_priority['critical']}")
    out.append(f"  ⬆️ High Priority: {by_priority['high']}")
    work_teams = Counter(i.team for i in items if not i.terminal)
    if work_teams:
        out.append(
            "  👥 Open Work by Team: " + ", ".join(f"{t}: {n}" for t, n in work_teams.items())
        )
    done = [i for i in items if i.status == WorkStatus.COMPLETED]
    points = sum(i.story_points or 0 for i in done)
    out += ["", "📈 VELOCITY & METRICS:", f"  📊 Current Sprint Velocity: {points} story points"]
    out.append(f"  ✅ Completed Work Items: {len(done)}")
    return "\n".join(out) + "\n"
