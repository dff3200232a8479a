"""SwarmSH's environment variables that choose where and how the store works.

``COORDINATION_DIR`` was SwarmSH's only way to say where its files are; here it is the
file store's directory unless ``--store`` or ``SWARM_STORE`` says otherwise (they are
swarmsh's own and more specific). ``COORDINATION_MODE=simple`` let SwarmSH skip its
lock; swarmsh always locks, which costs microseconds, so ``simple`` runs as ``atomic``.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

from orchestrator.errors import InvalidArgument
from orchestrator.locations import is_url

MODES = ("atomic", "simple")


def coordination_dir() -> str | None:
    """The store directory ``COORDINATION_DIR`` names, if set."""
    value = os.environ.get("COORDINATION_DIR", "").strip()
    if not value:
        return None
    if is_url(value):
        raise InvalidArgument(
            "COORDINATION_DIR names a directory; give a PostgreSQL URL in SWARM_STORE or --store"
        )
    return value


def check_coordination_mode() -> None:
    """Accept SwarmSH's modes; say once that ``simple`` still locks."""
    raw = os.environ.get("COORDINATION_MODE", "").strip()
    mode = raw.lower()
    if not mode or mode == "atomic":
        return
    if mode not in MODES:
        raise InvalidArgument(f"COORDINATION_MODE={raw!r}: use simple or atomic")
    sys.stderr.write(
        "swarm: COORDINATION_MODE=simple: swarmsh always locks the store (it costs"
        " microseconds), so this runs as atomic\n"
    )


class Registration(NamedTuple):
    agent_id: str | None  # None: AGENT_ID or a new one
    capacity: int
    status: str
    specialization: str
    team: str | None


def registration(args: list[str], team: str | None) -> Registration:
    """``register``'s arguments in either form: SwarmSH's README form
    ``<capacity> <status> <specialization>`` (a number first), or the form its script
    took, ``<agent_id> [team] [capacity] [specialization]``, with its defaults."""
    usage = (
        "register takes <capacity> <status> <specialization>, or SwarmSH's"
        " <agent_id> [team] [capacity] [specialization]"
    )
    if not args or len(args) > 4:
        raise InvalidArgument(usage)
    first, rest = args[0], args[1:]
    if first.lstrip("-").isdigit():
        if len(rest) != 2:
            raise InvalidArgument(usage)
        return Registration(None, int(first), rest[0], rest[1], team)
    capacity = rest[1] if len(rest) > 1 else "100"
    if not capacity.lstrip("-").isdigit():
        raise InvalidArgument(f"capacity {capacity!r} is not a number: {usage}")
    return Registration(
        first,
        int(capacity),
        "active",
        rest[2] if len(rest) > 2 else "general_development",
        team or (rest[0] if rest else "autonomous_team"),
    )
