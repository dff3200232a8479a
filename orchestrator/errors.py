"""One root exception whose subclasses carry SwarmSH's exit codes.

The class docstring is the default message, so ``raise NotFound()`` already says
something useful; pass a message to be specific.
"""

from __future__ import annotations


class SwarmError(Exception):
    """Something went wrong."""

    exit_code: int = 1

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "error").strip()
        super().__init__(self.message)


class InvalidArgument(SwarmError):
    """Invalid argument."""

    exit_code = 2


class ConfigError(InvalidArgument):
    """Invalid configuration."""


class Conflict(SwarmError):
    """The operation conflicts with the current state."""

    exit_code = 3


class Timeout(SwarmError):
    """The operation timed out."""

    exit_code = 4


class LockTimeout(Timeout):
    """Timed out waiting for the store lock (raise FLOCK_TIMEOUT or find the stuck process)."""


class PermissionDenied(SwarmError):
    """Permission denied."""

    exit_code = 5


class NotFound(SwarmError):
    """Not found."""

    exit_code = 6


class StoreError(SwarmError):
    """The coordination store cannot be used."""


class StorageFull(StoreError):
    """No space left on the device holding the store; nothing was written."""


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "general error",
    2: "invalid arguments or configuration",
    3: "conflict (e.g. the work item is held by another agent)",
    4: "timeout (e.g. the store lock, FLOCK_TIMEOUT)",
    5: "permission denied",
    6: "not found (agent or work item)",
}
