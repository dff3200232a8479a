"""Logging set-up shared by the CLI, the supervisor and agent processes."""

from __future__ import annotations

import logging
import os

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(prefix: str = "swarm") -> None:
    """Log to stderr at ``LOG_LEVEL`` (debug, info, warn, error; default warning)."""
    level = _LEVELS.get(os.environ.get("LOG_LEVEL", "warning").strip().lower(), logging.WARNING)
    logging.basicConfig(
        level=level, format=f"%(asctime)s {prefix} %(levelname)s: %(message)s", force=True
    )
