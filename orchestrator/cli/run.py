"""`swarm up`, `status`, `down` and `demo`: running a swarm from swarm.toml."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator import runstate
from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, context_of
from orchestrator.errors import Conflict, NotFound, SwarmError

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig
    from orchestrator.supervisor import Supervisor

commands = typer.Typer()

SUPERVISOR_LOG = "supervisor.log"
ERROR_PREFIX = "swarm: error: "


@commands.command()
def up(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; see swarm status/down.")
    ] = False,
    until_drained: Annotated[
        bool,
        typer.Option(
            "--until-drained", help="Stop once no work this swarm can claim is pending or held."
        ),
    ] = False,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", hidden=True, help="Log here once running.")
    ] = None,
    no_enqueue: Annotated[
        bool, typer.Option("--no-enqueue", help="Do not enqueue swarm.toml's [[work]].")
    ] = False,
) -> None:
    """Start the swarm of swarm.toml: spawn its agents and keep them alive until stopped.

    Ctrl-C (or SIGTERM) once stops warmly: agents finish or release their item within
    stop_timeout_s. Twice stops at once.
    """
    context = context_of(ctx)
    config = context.require_config()
    if detach:
        _detach(config, context.agents_dir, until_drained, no_enqueue)
        return
    from orchestrator.supervisor import Supervisor

    live = _live_view()
    supervisor = Supervisor(
        config,
        until_drained=until_drained,
        live_view=live,
        log_file=log_file,
        enqueue=not no_enqueue,
    )
    _run(supervisor, live)


def _live_view() -> bool:
    """A live view on a terminal (unless SWARM_NO_LIVE); without one, the log is how an
    operator sees what happens, so it speaks at INFO unless LOG_LEVEL says otherwise."""
    live = sys.stdout.isatty() and not os.environ.get("SWARM_NO_LIVE")
    if not live and "LOG_LEVEL" not in os.environ:
        logging.getLogger().setLevel(logging.INFO)
    return live


def _run(supervisor: Supervisor, live: bool, progress: bool = False) -> None:
    """Run the supervisor (under a live view on a terminal), then say how it ended."""
    from rich.console import Console

    from orchestrator.cli.live import SwarmView, print_outcome, print_summary

    console = Console()
    started = time.time()
    if live:
        view = SwarmView(progress=progress, console=console)
        supervisor.on_tick = view.update
        with view:
            code = supervisor.run()
    else:
        code = supervisor.run()
    if progress:
        print_summary(supervisor, console, started)
    if supervisor.until_drained:
        print_outcome(supervisor, console)
    if code:
        raise SwarmError(supervisor.exit_reason or f"the swarm ended with exit code {code}")


def _detach(config: SwarmConfig, agents_dir: Path, until_drained: bool, no_enqueue: bool) -> None:
    """Start the supervisor in its own session; return once it reports running, or fail
    with its own exit code and error line."""
    import tempfile

    agents_dir.mkdir(parents=True, exist_ok=True)
    state = runstate.read(agents_dir)
    if state is not None and runstate.is_alive(state):
        raise Conflict(
            f"another supervisor (pid {state['pid']}) is running for this swarm.toml;"
            " use `swarm status` or `swarm down`"
        )
    log_path = agents_dir / SUPERVISOR_LOG
    argv = [sys.executable, "-m", "orchestrator.cli", "-c", str(config.source)]
    argv += ["up", "--log-file", str(log_path)]
    # The store goes by environment, not argv: a DSN's password must not show in ps.
    env = {**os.environ, "SWARM_STORE": config.store_target()}
    if until_drained:
        argv.append("--until-drained")
    if no_enqueue:
        argv.append("--no-enqueue")
    # Until it holds the swarm's lock, the child writes to a file of its own: a start that
    # fails (another supervisor, a bad config) never lands in the running one's log.
    with tempfile.NamedTemporaryFile(
        dir=agents_dir, prefix=".supervisor-start-", suffix=".log", delete=False
    ) as start_log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=start_log,
            stderr=start_log,
            start_new_session=True,
            env=env,
        )
    start_path = Path(start_log.name)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = runstate.read(agents_dir)
            if state and state.get("pid") == child.pid and state.get("status") == "running":
                # What it said while starting (work enqueued, warnings) is shown here once.
                for line in start_path.read_text(errors="replace").splitlines():
                    render.echo(line)
                render.echo(f"swarm running in the background (pid {child.pid}); log: {log_path}")
                return
            if child.poll() is not None:
                if child.returncode == 0:  # e.g. --until-drained with nothing to do
                    for line in start_path.read_text(errors="replace").splitlines():
                        render.echo(line)
                    render.echo("the supervisor ran and finished (nothing left to do)")
                    return
                raise _child_error(child.returncode, start_path)
            time.sleep(0.05)
        raise SwarmError(
            f"the supervisor (pid {child.pid}) did not report running within 30s; see {log_path}"
        )
    finally:
        start_path.unlink(missing_ok=True)


def _child_error(code: int, start_log: Path) -> SwarmError:
    """The detached supervisor's own error line, with its exit code."""
    lines = start_log.read_text(errors="replace").strip().splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    message = (errors or lines or [f"the supervisor exited with code {code}"])[-1]
    error = SwarmError(message.removeprefix(ERROR_PREFIX))
    error.exit_code = code if code > 0 else 1  # killed by a signal: a general error
    return error


@commands.command()
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the running supervisor: groups, agents, pids, restarts, and the store's
    agents by host (exit 6 if no supervisor is running here)."""
    from collections import Counter

    from orchestrator.limits import status_if_configured

    context = context_of(ctx)
    config = context.require_config()
    state = runstate.read(context.agents_dir)
    alive = state is not None and runstate.is_alive(state)
    store = context.existing_store()  # looking never creates a store
    by_host = dict(Counter(a.host or "-" for a in store.list_agents())) if store else {}
    limits = status_if_configured(store, config)
    if as_json:
        render.emit_json(
            (state or {}) | {"alive": alive, "agents_by_host": by_host, "limits": limits}
        )
    else:
        if state is None:
            render.echo("no supervisor has run for this swarm.toml")
        else:
            render.supervisor_status(state, alive)
        hosts = ", ".join(f"{host} {n}" for host, n in sorted(by_host.items())) or "none"
        render.echo(f"agents registered in the store, by host: {hosts}")
        for line in render.limit_lines(limits or {}):
            render.echo(line)
    if not alive:
        raise typer.Exit(NotFound.exit_code)


@commands.command()
def down(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Cold stop: kill agents now.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the stop.")] = 60.0,
) -> None:
    """Stop the running supervisor and its agents: warm (SIGTERM: agents finish or
    release their item), or cold with --force (SIGQUIT: agents are killed at once)."""
    context = context_of(ctx)
    context.require_config()
    state = runstate.require_running(context.agents_dir)
    pid = int(state["pid"])
    _kill_quietly(pid, signal.SIGQUIT if force else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runstate.is_alive(state):
            render.echo(f"swarm stopped (supervisor pid {pid})")
            return
        time.sleep(0.1)
    raise SwarmError(f"supervisor pid {pid} still running after {timeout:g}s; try --force")


def _kill_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


@commands.command()
def demo(ctx: typer.Context) -> None:
    """Run the swarm of swarm.toml until its work is done, with a live view and a summary.

    Exits non-zero when items ended dead, naming the top errors.
    """
    from orchestrator.supervisor import Supervisor

    config = context_of(ctx).require_config()
    live = _live_view()
    _run(Supervisor(config, until_drained=True, live_view=live), live, progress=True)
