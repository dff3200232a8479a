"""What SwarmSH's ``coordination_helper.sh`` had besides the shared commands: its
aliases (``claim-fast``, ``claim-slow``, ``list-work-fast``, ``dashboard-fast``: the
plain commands, which are fast anyway), ``help``, and the sections of its Scrum at
Scale dashboard, which ``swarm dashboard`` prints above its own figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import typer

from orchestrator.cli import render, work
from orchestrator.records import PRIORITIES, Agent, WorkItem, WorkStatus
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
