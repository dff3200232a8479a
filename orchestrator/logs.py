"""Logging set-up shared by the CLI, the supervisor and agent processes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Each agent's own log: rotated by the standard handler, a few files kept.
AGENT_LOG_BYTES = 5 << 20
AGENT_LOG_BACKUPS = 3
LOGS_DIR = "logs"


def level_from_env() -> int:
    return _LEVELS.get(os.environ.get("LOG_LEVEL", "warning").strip().lower(), logging.WARNING)


def configure(prefix: str = "swarm") -> None:
    """Log to stderr at ``LOG_LEVEL`` (debug, info, warn, error; default warning)."""
    logging.basicConfig(
        level=level_from_env(),
        format=f"%(asctime)s {prefix} %(levelname)s: %(message)s",
        force=True,
    )


def agent_log_path(agents_dir: str | os.PathLike[str], slot_name: str) -> Path:
    """``<agents_dir>/logs/<group>-<n>.log``: one file per agent slot, across restarts."""
    return Path(agents_dir) / LOGS_DIR / f"{slot_name}.log"


def configure_agent(agent_id: str, log_file: Path, to_stderr: bool) -> None:
    """An agent logs at INFO (or LOG_LEVEL when lower) to its own rotating file, and its
    warnings to stderr as well unless the supervisor draws a live view there."""
    import logging.handlers  # only agents need it: it pulls in socket and pickle

    fmt = logging.Formatter(f"%(asctime)s {agent_id} %(levelname)s: %(message)s")
    handlers: list[logging.Handler] = []
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=AGENT_LOG_BYTES, backupCount=AGENT_LOG_BACKUPS
        )
        handler.setLevel(min(level_from_env(), logging.INFO))
        handlers.append(handler)
    except OSError:
        to_stderr = True  # no file to write to: stderr is all there is
    if to_stderr:
        handler = logging.StreamHandler()
        handler.setLevel(level_from_env())
        handlers.append(handler)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))
