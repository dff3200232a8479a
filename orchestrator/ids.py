"""Identifiers in SwarmSH's form (``work_<nanoseconds>``) made unique across hosts.

A random suffix is appended because two processes on two hosts can read the same
nanosecond; ids double as file names (``real_work_results/<id>.json``), so every id
accepted from outside is checked against a safe alphabet.
"""

from __future__ import annotations

import os
import re
import time

from orchestrator.errors import InvalidArgument

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _new(prefix: str) -> str:
    return f"{prefix}_{time.time_ns()}_{os.urandom(4).hex()}"


def new_work_id() -> str:
    return _new("work")


def new_agent_id() -> str:
    return _new("agent")


def nanosecond_agent_id() -> str:
    """SwarmSH's own form, ``agent_$(date +%s%N)``, for scripts that parse it."""
    return f"agent_{time.time_ns()}"


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe identifier, else raise InvalidArgument."""
    if not ID_PATTERN.match(value):
        raise InvalidArgument(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit"
        )
    return value
