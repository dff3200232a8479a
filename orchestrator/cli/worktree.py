"""``swarm worktree``: git worktrees with their own ports, database and .env."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of

if TYPE_CHECKING:
    from orchestrator.worktrees.settings import WorktreeSettings

commands = typer.Typer()
worktree_commands = typer.Typer(
    name="worktree",
    help="Git worktrees with their own ports, database and .env.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FeatureArg = Annotated[str, typer.Argument(help="The feature (names the worktree and branch).")]


def _settings(ctx: typer.Context) -> WorktreeSettings:
    from orchestrator.worktrees.settings import resolve

    context = context_of(ctx)
    config = context.config
    base_dir = config.base_dir if config is not None else Path.cwd()
    return resolve(config.worktrees if config else None, base_dir, context.store_target)


@worktree_commands.command("create")
def create(
    ctx: typer.Context,
    feature: FeatureArg,
    base: Annotated[
        str | None, typer.Option(help="Branch or commit to start from (default: HEAD's).")
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="Branch name (default: [worktrees] branch_prefix+FEATURE).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a worktree on a new branch, with its ports, database and .env."""
    from orchestrator.worktrees.lifecycle import create as create_worktree

    settings = _settings(ctx)
    tree = create_worktree(context_of(ctx).store(), settings, feature, base, branch)
    if as_json:
        render.emit_json({"feature": feature, **tree.value})
        return
    ports = tree.value["ports"]
    render.echo(
        f"Created worktree {feature} at {tree.path} on {tree.branch} (from {tree.base})\n"
        f"  ports: app {ports['app']}, assets {ports['asset']}, live reload {ports['livereload']}\n"
        f"  database: {tree.value['database']}\n"
        f"  cd {tree.path}   # its .env holds PORT, DATABASE_URL, SWARM_STORE, …"
    )


def _rows(ctx: typer.Context, detailed: bool) -> list[dict[str, Any]]:
    from orchestrator.worktrees.status import overview

    settings = _settings(ctx)
    store = context_of(ctx).existing_store()  # looking creates no store
    return overview(store, settings, detailed) if store is not None else []


@worktree_commands.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Worktrees: state, branch, ports, database, commits ahead, uncommitted changes."""
    rows = _rows(ctx, detailed=False)
    if as_json:
        render.emit_json(rows)
    elif not rows:
        render.echo("no worktrees (swarm worktree create FEATURE makes one)")
    else:
        _table(rows, detailed=False)


@worktree_commands.command("dashboard")
def dashboard(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Worktrees with the agents and items in them and their disk use."""
    rows = _rows(ctx, detailed=True)
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    summary = {
        "worktrees": len(rows),
        "states": states,
        "disk_bytes": sum(row["disk_bytes"] for row in rows),
    }
    if as_json:
        render.emit_json({"summary": summary, "worktrees": rows})
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    render.echo(f"Worktrees: {len(rows)} ({counts}), {_size(summary['disk_bytes'])} on disk")
    if rows:
        _table(rows, detailed=True)


@worktree_commands.command("merge")
def merge(
    ctx: typer.Context,
    feature: FeatureArg,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Message for uncommitted changes.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Commit what is uncommitted, push the branch to origin, say how to open the PR."""
    from orchestrator.worktrees.merge import merge as merge_worktree

    done = merge_worktree(context_of(ctx).store(), _settings(ctx), feature, message)
    if as_json:
        render.emit_json(done.__dict__)
        return
    if done.committed:
        render.echo(f"Committed the uncommitted changes as {done.committed[:12]}")
    where = f"Pushed {done.branch} to {done.pushed_to}" if done.pushed_to else done.branch
    render.echo(f"{where}: {done.ahead} commit(s) ahead of {done.base}")
    render.echo(f"Pull request: {done.pull_request}")


@worktree_commands.command("remove")
def remove(
    ctx: typer.Context,
    feature: FeatureArg,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also a broken or busy one, discarding uncommitted changes."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Free the worktree's ports and database and remove its checkout (the branch stays)."""
    from orchestrator.worktrees.lifecycle import remove as remove_worktree

    tree = remove_worktree(context_of(ctx).store(), _settings(ctx), feature, force)
    if as_json:
        render.emit_json({"feature": feature, "removed": True, "branch": tree.branch})
    else:
        render.echo(f"Removed worktree {feature} (branch {tree.branch} kept)")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _table(rows: list[dict[str, Any]], detailed: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Piped output is for people reading logs or grepping: no squeezing to 80 columns.
    table = Table(box=box.SIMPLE_HEAD)
    columns = ["feature", "state", "branch", "port", "database", "ahead", "uncommitted"]
    if detailed:
        columns += ["agent", "item", "disk"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        ports = row["ports"] or {}
        cells = [
            row["feature"],
            row["state"],
            row["branch"],
            str(ports.get("app", "-")),
            row["database"] or "-",
            str(row["ahead"]),
            "-" if row["uncommitted"] is None else str(row["uncommitted"]),
        ]
        if detailed:
            cells += [row["agent"] or "-", row["item"] or "-", _size(row["disk_bytes"])]
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


commands.add_typer(worktree_commands)
