"""Talking to a running supervisor from another process: `swarm stop|start|restart GROUP`.

A mailbox of files in ``<agents_dir>/control/``: the command writes a request
atomically, the supervisor's main loop answers it on its next tick (at most
``[supervisor] tick_s`` later) with a reply file next to it. Files rather than a
socket: no path-length limit, nothing to clean up after a kill -9, and it works the
same for a supervisor in the foreground and one started with ``--detach``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from orchestrator import runstate
from orchestrator.errors import Conflict, NotFound, SwarmError, Timeout
from orchestrator.files import write_atomic

CONTROL_DIR = "control"
ACTIONS = ("stop", "start", "restart")
_REQUEST = ".request.json"
_REPLY = ".reply.json"


def mailbox(agents_dir: Path) -> Path:
    return agents_dir / CONTROL_DIR


def send(agents_dir: Path, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Post ``request`` and wait for the supervisor's reply."""
    box = mailbox(agents_dir)
    box.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}"
    request_path = box / f"{name}{_REQUEST}"
    reply_path = box / f"{name}{_REPLY}"
    write_atomic(str(request_path), orjson.dumps(request), fsync=False)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                reply = orjson.loads(reply_path.read_bytes())
            except FileNotFoundError:
                time.sleep(0.02)
                continue
            return reply if isinstance(reply, dict) else {"ok": False, "message": "bad reply"}
        raise Timeout(f"the supervisor did not answer within {timeout_s:g}s (is it stuck?)")
    finally:
        # Never leave a request behind for a later supervisor to act on.
        for path in (request_path, reply_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def clear(agents_dir: Path) -> None:
    """Drop requests left from before this supervisor started (their sender is gone)."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(mailbox(agents_dir)):
            with contextlib.suppress(FileNotFoundError):
                (mailbox(agents_dir) / name).unlink()


def serve_pending(agents_dir: Path, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Answer every request waiting in the mailbox; return how many were answered."""
    box = mailbox(agents_dir)
    try:
        names = sorted(n for n in os.listdir(box) if n.endswith(_REQUEST))
    except FileNotFoundError:
        return 0
    for name in names:
        path = box / name
        try:
            request = orjson.loads(path.read_bytes())
            reply = handle(request) if isinstance(request, dict) else None
        except (FileNotFoundError, orjson.JSONDecodeError):
            reply = None
        if reply is None:
            reply = {"ok": False, "message": "unreadable request"}
        write_atomic(str(box / name.replace(_REQUEST, _REPLY)), orjson.dumps(reply), fsync=False)
        path.unlink(missing_ok=True)
    return len(names)


def act(agents_dir: Path, action: str, group: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Ask the running supervisor to stop, start or restart ``group`` and wait until it
    has settled (every agent stopped, or running as a new process for a restart); what
    `swarm stop|start|restart --json` prints and the HTTP API answers."""
    state = runstate.require_running(agents_dir)
    if state.get("status") != "running":
        raise Conflict(f"the supervisor is {state.get('status')}: it takes no requests now")
    before = {a["pid"] for a in state.get("agents", []) if a["group"] == group}
    reply = send(agents_dir, {"action": action, "group": group}, timeout_s)
    if not reply.get("ok"):
        message = str(reply.get("message", "refused"))
        raise (NotFound(message) if message.startswith("no agent group") else SwarmError(message))
    want = "stopped" if action == "stop" else "running"
    deadline = time.monotonic() + timeout_s
    while True:
        state = runstate.require_running(agents_dir)
        rows = [a for a in state.get("agents", []) if a["group"] == group]
        # A restart has settled once every agent of the group is a new process.
        fresh = [a for a in rows if action != "restart" or a["pid"] not in before]
        settled = [a for a in fresh if a["state"] == want and (want != "running" or a["pid"])]
        if len(settled) == len(rows):
            return {"group": group, "state": want, "agents": rows}
        if time.monotonic() > deadline:
            raise Timeout(f"group {group} is not {want} after {timeout_s:g}s: see swarm status")
        time.sleep(0.1)
