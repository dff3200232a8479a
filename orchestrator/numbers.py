"""Numbers read from swarm.toml and the environment: finite and bounded, or refused.

``inf`` and ``nan`` parse as floats and then crash far from where they were written (a
timer's ``OverflowError``, a ``null`` lease in the journal); a number of seconds above
``MAX_SECONDS`` (about 31 years) is a typo that would do the same in ``Event.wait``.
"""

from __future__ import annotations

import math
import os

from orchestrator.errors import InvalidArgument

MAX_SECONDS = 1e9


def check_number(
    value: float, what: str, minimum: float = 0.0, maximum: float = MAX_SECONDS
) -> float:
    """``value`` if finite and within bounds, else InvalidArgument naming ``what``."""
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise InvalidArgument(f"{what}: use a number from {minimum:g} to {maximum:g}")
    return value


def env_number(
    name: str, default: float, minimum: float = 0.0, maximum: float = MAX_SECONDS
) -> float:
    """A number from the environment variable ``name`` (``default`` when unset)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(
            f"{name}={raw!r}: not a number; use a number from {minimum:g} to {maximum:g}"
        ) from None
    return check_number(value, f"{name}={raw!r}", minimum, maximum)
