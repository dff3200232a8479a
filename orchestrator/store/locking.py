"""The store's hot-path lock: ``flock`` on a descriptor kept open, and a line to wait in.

Writers are serialised by one ``flock`` (``.lock``). Waiting for it is organised so that
the holder keeps a CPU: a contended process queues on a second ``flock`` (``.lock-line``)
asleep in the kernel, and only the process at the front of the line polls the store
lock, reading what the holder appends meanwhile (``while_waiting``), so that once it
holds the lock it has about one record left to read. When every waiter polled, 10 or 32
processes on 2 cores took the CPU from the holder, which then held the lock 3-5 times
longer than its own work took (bench/RESULTS.md, "Issue 20").

A process that finds the store lock free takes it without queueing (it has just read
the journal, so its hold is short) unless the front of the line has waited longer than
``_BARGE_FOR_S``: past that, newcomers queue too, which bounds how long the front waits.
The front writes when it began to wait into the line file (8 bytes), a hint read
without a lock: the store lock alone decides who writes, so a stale or torn
hint costs a queued wait, never a double writer. A waiter killed at the front leaves
the kernel's ``flock`` released and its stamp stale, which the next front overwrites.
The lock is shared by the threads of one process (flock belongs to the open file
description), so callers serialise their own threads first.

``FLOCK_TIMEOUT`` bounds the wait of a one-shot command, which then exits 4: it polls
the line and then the store lock with non-blocking ``flock`` calls and a growing pause
(no signal, no thread: an interval timer's SIGALRM would fight any other user of the
signal and works in the main thread only). Long-lived processes (the supervisor and its
agents) call ``wait_patiently()``: they sleep in the line without a timeout, and at its
front log a wait past ``FLOCK_TIMEOUT`` and keep retrying, so a backup script or a
stopped CLI holding the lock delays the swarm instead of ending it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
from collections.abc import Callable

from orchestrator.errors import LockTimeout
from orchestrator.numbers import env_number

logger = logging.getLogger(__name__)

# The front of the line waits this long before newcomers stop taking a free lock first.
_BARGE_FOR_S = 0.010
# The front retries at once (yielding the CPU) this many times before it sleeps.
_YIELDS = 200
# The longest pause between tries: what a waiter may lag behind the release.
_MAX_PAUSE_S = 0.002
_STAMP = struct.Struct("d")  # monotonic time the front began to wait; 0.0 when none
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
        try:
            self._line = _Line(path + "-line")
        except BaseException:
            os.close(self._fd)
            raise

    def acquire(self, while_waiting: Callable[[], object] | None = None) -> None:
        """Take the lock: at once if it is free and the line is short, else in line.
        ``while_waiting`` runs between tries at the front (the store reads what the
        holder appends, so it has less to read once it holds the lock)."""
        if not self._line.overdue() and self._try():
            return
        deadline = None
        if self.timeout_s and self.timeout_s > 0 and not _patient:
            deadline = time.monotonic() + self.timeout_s
        self._line.join(deadline, self._timeout_error)
        try:
            self._line.stamp()
            self._wait_at_front(deadline, while_waiting)
        finally:
            self._line.leave()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now."""
        return self._try()

    def line_overdue(self) -> bool:
        """Whether the front of the line has waited long enough that newcomers queue."""
        return self._line.overdue()

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
        self._line.close()

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

    def _wait_at_front(
        self, deadline: float | None, while_waiting: Callable[[], object] | None
    ) -> None:
        started = time.monotonic()
        report_every = self.timeout_s if self.timeout_s and self.timeout_s > 0 else None
        report_at = None if report_every is None else started + report_every
        reported = False
        tries = 0
        pause = 0.00005
        while True:
            if while_waiting is not None:
                while_waiting()
            if self._try():
                break
            tries += 1
            if tries <= _YIELDS:  # the holder is usually done within a few yields
                os.sched_yield()
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise self._timeout_error()
            if report_at is not None and report_every is not None and now >= report_at:
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


class _Line:
    """The queue in front of the store lock: a ``flock`` its waiters sleep on, and the
    front's stamp in the same file (read and written in place: no mapping, which
    would hold a second descriptor)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def overdue(self) -> bool:
        raw = os.pread(self._fd, _STAMP.size, 0)
        if len(raw) < _STAMP.size:
            return False  # a new line: nobody has waited yet
        since: float = _STAMP.unpack(raw)[0]
        return since > 0.0 and time.monotonic() - since > _BARGE_FOR_S

    def join(self, deadline: float | None, timeout: Callable[[], LockTimeout]) -> None:
        if deadline is None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # asleep until the one in front leaves
            return
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                raise timeout()
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE_S)

    def stamp(self) -> None:
        os.pwrite(self._fd, _STAMP.pack(time.monotonic()), 0)

    def leave(self) -> None:
        os.pwrite(self._fd, _STAMP.pack(0.0), 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def flock_timeout_from_env(default: float = 30.0) -> float:
    """``FLOCK_TIMEOUT`` in seconds, as SwarmSH reads it (0 = wait forever)."""
    return env_number("FLOCK_TIMEOUT", default)
