"""`swarm up`, `status`, `down` and `demo`: running a swarm from swarm.toml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator import render, runstate
from orchestrator.errors import InvalidArgument, NotFound, SwarmError

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _config(ctx: typer.Context) -> SwarmConfig:
    from orchestrator.config import load_config

    root = ctx.find_root().params
    path = root.get("config") or "swarm.toml"
    if not os.path.exists(path):
        raise InvalidArgument(f"{path}: no such file (run where swarm.toml is, or pass -c FILE)")
    config = load_config(path)
    return config.with_store(root["store"]) if root.get("store") else config


def up(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; see swarm status/down.")
    ] = False,
    until_drained: Annotated[
        bool, typer.Option("--until-drained", help="Stop once no work is pending or held.")
    ] = False,
) -> None:
    """Start the swarm of swarm.toml: spawn its agents and keep them alive until stopped.

    Ctrl-C (or SIGTERM) once stops warmly: agents finish or release their item within
    stop_timeout_s. Twice stops at once.
    """
    config = _config(ctx)
    if detach:
        _detach(config, until_drained)
        return
    from orchestrator.supervisor import Supervisor

    code = Supervisor(config, until_drained=until_drained).run()
    if code:
        raise typer.Exit(code)


def _detach(config: SwarmConfig, until_drained: bool) -> None:
    from orchestrator.supervisor import agents_dir_of

    agents_dir = agents_dir_of(config)
    agents_dir.mkdir(parents=True, exist_ok=True)
    log_path = agents_dir / "supervisor.log"
    argv = [sys.executable, "-m", "orchestrator.cli", "-c", str(config.source), "up"]
    if until_drained:
        argv.append("--until-drained")
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = runstate.read(agents_dir)
        if state and state.get("pid") == child.pid and state.get("status") == "running":
            render.echo(f"swarm running in the background (pid {child.pid}); log: {log_path}")
            return
        if child.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SwarmError(f"the supervisor exited with code {child.returncode}: {tail[0]}")
        time.sleep(0.05)
    raise SwarmError(
        f"the supervisor (pid {child.pid}) did not report running within 30s; see {log_path}"
    )


def _running_state(config: SwarmConfig) -> dict[str, Any]:
    from orchestrator.supervisor import agents_dir_of

    state = runstate.read(agents_dir_of(config))
    if state is None or not runstate.is_alive(state):
        raise NotFound("no supervisor is running for this swarm.toml")
    return state


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the running supervisor: groups, agents, pids, restarts, and the store's
    agents by host (exit 6 if no supervisor is running here)."""
    from collections import Counter

    from orchestrator.store import open_store
    from orchestrator.supervisor import agents_dir_of

    config = _config(ctx)
    state = runstate.read(agents_dir_of(config))
    alive = state is not None and runstate.is_alive(state)
    store = open_store(config.store_target(), config.store)
    try:
        by_host = dict(Counter(a.host or "-" for a in store.list_agents()))
    finally:
        store.close()
    if as_json:
        render.emit_json((state or {}) | {"alive": alive, "agents_by_host": by_host})
    else:
        if state is None:
            render.echo("no supervisor has run for this swarm.toml")
        else:
            render.supervisor_status(state, alive)
        hosts = ", ".join(f"{host} {n}" for host, n in sorted(by_host.items())) or "none"
        render.echo(f"agents registered in the store, by host: {hosts}")
    if not alive:
        raise typer.Exit(NotFound.exit_code)


def down(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Cold stop: kill agents now.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the stop.")] = 60.0,
) -> None:
    """Stop the running supervisor and its agents (warm; --force for cold)."""
    config = _config(ctx)
    state = _running_state(config)
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    if force:
        time.sleep(1.1)  # a repeat within a second is ignored by the supervisor
        _kill_quietly(pid, signal.SIGTERM)
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


def demo(ctx: typer.Context) -> None:
    """Run the swarm of swarm.toml until its work is done, with a live view and a summary."""
    from orchestrator.demo import LiveView
    from orchestrator.supervisor import Supervisor

    config = _config(ctx)
    view = LiveView()
    supervisor = Supervisor(config, until_drained=True, on_tick=view.update)
    with view:
        code = supervisor.run()
    view.summary(supervisor)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    for command in (up, status, down, demo):
        app.command()(command)
