"""`swarm maintenance status|run`, `swarm optimize` and `swarm cron install|status|test|
remove`: SwarmSH's 8020 automation, inside the supervisor or from cron."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of

if TYPE_CHECKING:
    from orchestrator.maintenance.tasks import Outcome

commands = typer.Typer()
maintenance_commands = typer.Typer(
    name="maintenance",
    help="Scheduled 8020 tasks: health, telemetry, performance, queue optimisation.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
cron_commands = typer.Typer(
    name="cron",
    help="The maintenance tasks as crontab lines (for swarms without a supervisor).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _when(ts: Any, now: float) -> str:
    if not isinstance(ts, int | float):
        return "-"
    if ts >= now:
        return "in " + render.age(now, ts)
    return render.age(ts, now) + " ago"


def _outcomes(outcomes: list[Outcome], as_json: bool) -> None:
    if as_json:
        render.emit_json([outcome.to_dict() for outcome in outcomes])
    else:
        for outcome in outcomes:
            mark = "ok   " if outcome.ok else "ERROR"
            render.echo(f"{mark} {outcome.task:<12} {outcome.summary}")
        if not outcomes:
            render.echo("nothing due")
    if any(not outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


def _status_table(rows: list[dict[str, Any]]) -> None:
    now = time.time()
    render.echo(
        f"{'TASK':<12} {'SCHEDULE':<22} {'LAST RUN':<10} {'OUTCOME':<8} {'NEXT':<10} SUMMARY"
    )
    for row in rows:
        render.echo(
            f"{row['task']:<12} {row['schedule']:<22} {_when(row['last_started'], now):<10}"
            f" {row['outcome'] or '-':<8} {_when(row['next_due'], now):<10} {row['summary'] or ''}"
        )


@maintenance_commands.command("status")
def maintenance_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Each task: its schedule, last run, outcome and next run, as recorded in the store
    (shared by every supervisor and cron job on it)."""
    from orchestrator.maintenance.operate import status

    rows = status(context_of(ctx))
    if as_json:
        render.emit_json(rows)
    else:
        _status_table(rows)


@maintenance_commands.command("run")
def maintenance_run(
    ctx: typer.Context,
    task: Annotated[
        str, typer.Argument(help="sweep, health, telemetry, performance, optimize, or all.")
    ],
    if_due: Annotated[
        bool,
        typer.Option("--if-due", help="Only when its period has come (what cron lines run)."),
    ] = False,
    trigger: Annotated[
        str, typer.Option("--trigger", help="Recorded in the span: manual, cron, ...")
    ] = "manual",
    as_json: JsonFlag = False,
) -> None:
    """Run a maintenance task (or all) now; its next period counts from now. Exit 1
    when a task failed."""
    from orchestrator.maintenance.operate import run

    _outcomes(run(context_of(ctx), task, if_due=if_due, trigger=trigger), as_json)


@commands.command()
def optimize(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Optimise the work queue now (SwarmSH's optimize): return expired leases, archive
    finished items, warn above WORK_MAX_ACTIVE; writes work_optimization_report.json."""
    from orchestrator.maintenance.operate import optimize as run_optimize

    _outcomes([run_optimize(context_of(ctx))], as_json)


@cron_commands.command("install")
def cron_install(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Install this swarm's maintenance lines in the crontab (idempotent; other lines
    are left as they are)."""
    from orchestrator.maintenance.operate import cron_install as install

    result = install(context_of(ctx))
    if as_json:
        render.emit_json(result)
        return
    verb = "installed" if result["changed"] else "already installed"
    render.echo(f"{verb}: {len(result['lines'])} cron line(s) for swarm {result['swarm']}")
    for line in result["lines"]:
        render.echo(f"  {line}")


@cron_commands.command("status")
def cron_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """This swarm's crontab lines, and each task's last run and outcome."""
    from orchestrator.maintenance.operate import cron_status as status

    result = status(context_of(ctx))
    if as_json:
        render.emit_json(result)
        return
    if not result["installed"]:
        render.echo(f"no cron lines for swarm {result['swarm']} (swarm cron install)")
    else:
        note = "" if result["up_to_date"] else " (out of date: run swarm cron install)"
        render.echo(f"{len(result['installed'])} cron line(s) for swarm {result['swarm']}{note}")
        for line in result["installed"]:
            render.echo(f"  {line}")
    render.echo(f"log: {result['log']}")
    _status_table(result["tasks"])


@cron_commands.command("test")
def cron_test(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Run each task once now, as its cron line would, and report. Exit 1 when one
    failed."""
    from orchestrator.maintenance.operate import cron_test as test

    _outcomes(test(context_of(ctx)), as_json)


@cron_commands.command("remove")
def cron_remove(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Remove this swarm's lines from the crontab (and no other line)."""
    from orchestrator.maintenance.operate import cron_remove as remove

    result = remove(context_of(ctx))
    if as_json:
        render.emit_json(result)
    else:
        render.echo(f"removed {result['removed']} cron line(s) of swarm {result['swarm']}")


commands.add_typer(maintenance_commands)
commands.add_typer(cron_commands)
