"""The supervisor's state file (``<agents_dir>/supervisor.json``), read by
``swarm status`` and ``swarm down`` from another terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import psutil

from orchestrator.errors import NotFound
from orchestrator.files import write_atomic

STATE_FILE = "supervisor.json"


def state_path(agents_dir: Path) -> Path:
    return agents_dir / STATE_FILE


def write_json(path: Path, data: Any) -> None:
    write_atomic(str(path), orjson.dumps(data, option=orjson.OPT_INDENT_2), fsync=False)


def read(agents_dir: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(state_path(agents_dir).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_alive(state: dict[str, Any]) -> bool:
    """Whether the supervisor that wrote ``state`` still runs (pid reuse checked
    against its start time)."""
    pid = state.get("pid")
    if not isinstance(pid, int) or state.get("status") == "stopped":
        return False
    try:
        proc = psutil.Process(pid)
        started = float(state.get("started_at", 0))
        return bool(proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= started + 1)
    except psutil.Error:
        return False


def require_running(agents_dir: Path) -> dict[str, Any]:
    """The state of the supervisor running for this swarm, else NotFound (exit 6)."""
    state = read(agents_dir)
    if state is None or not is_alive(state):
        raise NotFound("no supervisor is running for this swarm.toml (start one: swarm up)")
    return state
