"""The worktree's ``.env``: what a program started in it needs to stay out of the
others' way. git is told to ignore it (``info/exclude``), so it is never committed."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orchestrator.files import write_atomic
from orchestrator.locations import without_password
from orchestrator.worktrees import git
from orchestrator.worktrees.alloc import Ports, database_url
from orchestrator.worktrees.settings import WorktreeSettings

ENV_FILE = ".env"


def variables(
    settings: WorktreeSettings, feature: str, ports: Ports, database: str | None
) -> dict[str, str]:
    env = {
        "PORT": str(ports.app),
        "ASSET_PORT": str(ports.asset),
        "LIVERELOAD_PORT": str(ports.livereload),
    }
    if database is not None:
        env["DATABASE_NAME"] = database
        if settings.database_dsn:
            env["DATABASE_URL"] = database_url(settings.database_dsn, database)
    env["SWARM_STORE"] = without_password(settings.store_target)
    env["SWARM_WORKTREE"] = feature
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"worktree={feature}"
    return env


def write(path: Path, env: dict[str, str]) -> None:
    lines = "".join(f"{key}={_quoted(value)}\n" for key, value in env.items())
    header = "# Written by swarm worktree create; removed with the worktree.\n"
    write_atomic(str(path / ENV_FILE), (header + lines).encode(), fsync=False)


def _quoted(value: str) -> str:
    if all(c.isalnum() or c in "_-.:/@=,+" for c in value):
        return value
    return "'" + value.replace("'", "'\\''") + "'"


def exclude(repo: Path) -> None:
    """Add ``/.env`` to the repository's ``info/exclude`` once (many processes may try
    at the same time: an flock on the file decides)."""
    info = git.common_dir(repo) / "info"
    info.mkdir(exist_ok=True)
    line = f"/{ENV_FILE}"
    fd = os.open(info / "exclude", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        text = os.pread(fd, size, 0).decode(errors="replace") if size else ""
        if line not in text.splitlines():
            os.write(
                fd, (("\n" if text and not text.endswith("\n") else "") + line + "\n").encode()
            )
    finally:
        os.close(fd)
