"""Logging set-up shared by the CLI, the supervisor and agent processes."""

from __future__ import annotations

import logging
import os

from orchestrator.errors import ConfigError

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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


def configure(prefix: str = "swarm") -> None:
    """Log to stderr at ``LOG_LEVEL``. An unknown level logs at warning here, without
    raising: the CLI calls this before its error handling is in place, so the refusal is
    the command's (``Context`` calls ``level()``: one line, exit 2), and agents get the
    environment their supervisor's command already checked."""
    try:
        chosen = level()
    except ConfigError:
        chosen = logging.WARNING
    logging.basicConfig(
        level=chosen, format=f"%(asctime)s {prefix} %(levelname)s: %(message)s", force=True
    )
