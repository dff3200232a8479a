"""The store's hot-path lock: ``flock`` on a descriptor kept open.

``filelock`` polls a non-blocking lock and sleeps between tries (~5,700 acquisitions/s
and 50-100 ms p99 waits under contention on this class of machine); here a contended
acquire first polls for a few milliseconds while it reads what the holder appends, then
backs off to at most 2 ms between tries (``FLOCK_TIMEOUT=0``: a blocking ``flock`` the
kernel wakes at once; bench/RESULTS.md, "Store lock"). The lock is shared by
the threads of one process (flock belongs to the open file description), so callers
serialise their own threads first.

``FLOCK_TIMEOUT`` bounds the wait of a one-shot command, which then exits 4. The wait
past the first few milliseconds polls a non-blocking ``flock`` with a growing pause (no
signal, no thread: an interval timer's SIGALRM would fight any other user of the
signal and works in the main thread only). Long-lived processes (the supervisor and its
agents) call ``wait_patiently()``: past ``FLOCK_TIMEOUT`` they log the wait and keep
retrying, so a backup script or a stopped CLI holding the lock delays the swarm
instead of ending it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable

from orchestrator.errors import LockTimeout
from orchestrator.numbers import env_number

logger = logging.getLogger(__name__)

# How long a contended acquire polls (catching up on the journal) before it backs off.
_POLL_FOR_S = 0.005
# The longest pause between tries: what a waiter may lag behind the release.
_MAX_PAUSE_S = 0.002
# A patient waiter logs again after waits of this many seconds, doubling to an hour.
_REPORT_EVERY_S = 60.0
_REPORT_MAX_S = 3600.0

_patient = False


def wait_patiently(patient: bool = True) -> None:
    """For this process: wait past FLOCK_TIMEOUT (logging) instead of raising."""
    global _patient
    _patient = patient


class StoreLock:
    def __init__(self, path: str, timeout_s: float | None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def acquire(self, while_waiting: Callable[[], object] | None = None) -> None:
        """Take the lock. A short contended wait polls and runs ``while_waiting``
        between tries (the store reads what the holder appends, so it has less to
        read once it holds the lock); a longer one backs off."""
        if self._try():
            return
        if while_waiting is not None:
            pause = 0.00002
            spent = 0.0
            while spent < _POLL_FOR_S:
                while_waiting()
                if self._try():
                    return
                time.sleep(pause)
                spent += pause
                pause = min(pause * 2, 0.0005)
        self._wait()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now."""
        return self._try()

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _try(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait(self) -> None:
        if not self.timeout_s or self.timeout_s <= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # wait forever: the kernel wakes us
            return
        started = time.monotonic()
        report_at = started + self.timeout_s
        report_every = self.timeout_s
        pause = 0.0001
        reported = False
        while not self._try():
            now = time.monotonic()
            if now >= report_at:
                if not _patient:
                    raise self._timeout_error()
                reported = True
                logger.warning(
                    "waited %.0fs for the store lock %s (another process holds it); still waiting",
                    now - started,
                    self.path,
                )
                report_every = min(max(report_every * 2, _REPORT_EVERY_S), _REPORT_MAX_S)
                report_at = now + report_every
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE_S)
        if reported:
            logger.warning(
                "got the store lock %s after %.1fs", self.path, time.monotonic() - started
            )

    def _timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"timed out after {self.timeout_s:g}s waiting for the store lock {self.path}"
            " (another process holds it; raise FLOCK_TIMEOUT or stop that process)"
        )


def flock_timeout_from_env(default: float = 30.0) -> float:
    """``FLOCK_TIMEOUT`` in seconds, as SwarmSH reads it (0 = wait forever)."""
    return env_number("FLOCK_TIMEOUT", default)
