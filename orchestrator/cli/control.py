"""Controlling a running swarm like supervisorctl: `swarm stop|start|restart GROUP` and
`swarm logs [GROUP|AGENT] [-f] [-n N]`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import control, runstate
from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of
from orchestrator.errors import NotFound
from orchestrator.logs import LOGS_DIR

commands = typer.Typer()

GroupArg = Annotated[str, typer.Argument(help="An agent group of swarm.toml.")]
WaitOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the group to settle.")
]


def _act(ctx: typer.Context, action: str, group: str, timeout: float, as_json: bool) -> None:
    result = control.act(context_of(ctx).agents_dir, action, group, timeout)
    if as_json:
        render.emit_json(result)
    else:
        render.echo(f"{group}: {result['state']} ({len(result['agents'])} agent(s))")


@commands.command()
def stop(
    ctx: typer.Context, group: GroupArg, timeout: WaitOpt = 60.0, as_json: JsonFlag = False
) -> None:
    """Stop one agent group of the running swarm (warm); it stays stopped until started."""
    _act(ctx, "stop", group, timeout, as_json)


@commands.command()
def start(
    ctx: typer.Context, group: GroupArg, timeout: WaitOpt = 60.0, as_json: JsonFlag = False
) -> None:
    """Start a stopped (or exited, or fatal) agent group of the running swarm."""
    _act(ctx, "start", group, timeout, as_json)


@commands.command()
def restart(
    ctx: typer.Context, group: GroupArg, timeout: WaitOpt = 60.0, as_json: JsonFlag = False
) -> None:
    """Stop an agent group warmly, then start it again with new agent processes."""
    _act(ctx, "restart", group, timeout, as_json)


# -- logs ----------------------------------------------------------------------------------


def log_files(agents_dir: Path, which: str | None) -> list[Path]:
    """The log files of ``which``: a group, an agent (slot name or agent id), the
    supervisor, or everything when None."""
    folder = agents_dir / LOGS_DIR
    agent_logs = sorted(folder.glob("*.log")) if folder.is_dir() else []
    supervisor_log = agents_dir / "supervisor.log"
    if which is None:
        return [*([supervisor_log] if supervisor_log.exists() else []), *agent_logs]
    if which == "supervisor":
        return [supervisor_log] if supervisor_log.exists() else []
    exact = [p for p in agent_logs if p.stem == which]
    if exact:
        return exact
    group = [p for p in agent_logs if p.stem.rsplit("-", 1)[0] == which]
    if group:
        return group
    state = runstate.read(agents_dir) or {}
    names = [a["name"] for a in state.get("agents", []) if a.get("agent_id") == which]
    return [p for p in agent_logs if p.stem in names]


def _tail(path: Path, lines: int) -> list[str]:
    if lines <= 0:
        return []
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))
        data = f.read()
    return data.decode(errors="replace").splitlines()[-lines:]


def _follow(find: Callable[[], list[Path]], prefix: bool) -> Iterator[str]:
    """New lines of the files ``find`` returns, as they are written: a file that appears
    later (an agent started since) is read from its start, a rotated one is reopened."""
    offsets = {p: p.stat().st_size for p in find()}
    inodes = {p: p.stat().st_ino for p in offsets}
    partial: dict[Path, str] = {}
    while True:
        quiet = True
        for path in find():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path not in offsets or stat.st_ino != inodes[path] or stat.st_size < offsets[path]:
                inodes[path], offsets[path] = stat.st_ino, 0  # new, rotated or truncated
            if stat.st_size == offsets[path]:
                continue
            with open(path, "rb") as f:
                f.seek(offsets[path])
                chunk = f.read()
            offsets[path] += len(chunk)
            text = partial.get(path, "") + chunk.decode(errors="replace")
            *complete, partial[path] = text.split("\n")
            for line in complete:
                quiet = False
                yield f"{path.stem} | {line}" if prefix else line
        if quiet:
            time.sleep(0.2)


@commands.command()
def logs(
    ctx: typer.Context,
    which: Annotated[
        str | None,
        typer.Argument(help="A group, an agent (name like w-1, or id), or supervisor."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines of each file.", min=0)] = 20,
) -> None:
    """Show the logs of the swarm's agents (one rotating file per agent) and supervisor."""
    agents_dir = context_of(ctx).agents_dir
    paths = log_files(agents_dir, which)
    if not paths:
        where = agents_dir / LOGS_DIR
        raise NotFound(f"no log for {which or 'this swarm'} in {where} (has the swarm run?)")
    prefix = len(paths) > 1
    for path in paths:
        for line in _tail(path, lines):
            sys.stdout.write(f"{path.stem} | {line}\n" if prefix else f"{line}\n")
    sys.stdout.flush()
    if follow:
        try:
            for line in _follow(lambda: log_files(agents_dir, which), prefix):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
