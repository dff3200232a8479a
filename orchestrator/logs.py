"""Logging set-up shared by the CLI, the supervisor and agent processes."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from orchestrator import redaction
from orchestrator.errors import ConfigError

if TYPE_CHECKING:
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


def level() -> int:
    """``LOG_LEVEL`` (debug, info, warning or warn, error; default warning). An unknown
    value is refused: quietly logging at another level than the one asked for would
    hide exactly the messages someone raised the level to see."""
    raw = os.environ.get("LOG_LEVEL")
    if raw is None or not raw.strip():
        return logging.WARNING
    found = _LEVELS.get(raw.strip().lower())
    if found is None:
        raise ConfigError(f"LOG_LEVEL={raw!r}: use one of debug, info, warning, error")
    return found


def level_from_env() -> int:
    """``level()``, falling back to warning where refusing is not this code's to do."""
    try:
        return level()
    except ConfigError:
        return logging.WARNING


def configure(prefix: str = "swarm") -> None:
    """Log to stderr at ``LOG_LEVEL``. An unknown level logs at warning here, without
    raising: the CLI calls this before its error handling is in place, so the refusal is
    the command's (``Context`` calls ``level()``: one line, exit 2), and agents get the
    environment their supervisor's command already checked."""
    logging.basicConfig(
        level=level_from_env(),
        format=f"%(asctime)s {prefix} %(levelname)s: %(message)s",
        force=True,
    )
    redaction.redact_logs()


def agent_log_path(agents_dir: str | os.PathLike[str], slot_name: str) -> Path:
    """``<agents_dir>/logs/<group>-<n>.log``: one file per agent slot, across restarts."""
    from pathlib import Path  # not at the top: the item commands never need it

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
    redaction.redact_logs()
