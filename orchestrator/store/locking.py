"""The store's hot-path lock: ``flock`` on a descriptor kept open, and a line to wait in.

Writers are serialised by one ``flock`` (``.lock``). Waiting for it is organised so that
the holder keeps a CPU and the next holder has little left to read when its turn comes:

- a contended process queues on a second ``flock`` (``.lock-queue``), asleep in the
  kernel, taking no CPU from the holder;
- the one that gets it is second in line: it reads what the holder appends
  (``while_waiting``: the store catches up on the journal) between tries of a third
  ``flock`` (``.lock-line``), held by the front of the line;
- the front reads too, between tries of the store lock itself, so that once it holds
  the lock it has about one record left to read.

When every waiter polled the store lock, 10 or 32 processes on 2 cores took the CPU
from the holder, which then held the lock 3-5 times longer than its own work took; with
one stage of line, the front had a whole round of records to read after it woke
(bench/RESULTS.md, "Issue 20").

A process that finds the store lock free takes it without queueing (it has just read
the journal, so its hold is short) unless the front has waited longer than
``_BARGE_FOR_S``: past that, newcomers queue too, which bounds how long the front waits.
The front writes when it began to wait into ``.lock-line`` (8 bytes), a hint read
without a lock: the store lock alone decides who writes, so a stale or torn hint costs
a queued wait, never a double writer. A waiter killed anywhere in line leaves its
``flock`` released by the kernel, and a stale stamp that the next front overwrites.
The lock is shared by the threads of one process (flock belongs to the open file
description), so callers serialise their own threads first.

``FLOCK_TIMEOUT`` bounds the wait of a one-shot command, which then exits 4: every stage
is tried with non-blocking ``flock`` calls and a growing pause (no signal, no thread: an
interval timer's SIGALRM would fight any other user of the signal and works in the main
thread only). Long-lived processes (the supervisor and its agents) call
``wait_patiently()``: they sleep in the queue without a timeout, and at the front log a
wait past ``FLOCK_TIMEOUT`` and keep retrying, so a backup script or a stopped CLI
holding the lock delays the swarm instead of ending it.
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
# Second in line, the longest pause between tries while the front is likely to leave
# soon, and how long that is assumed (then the pause grows to _MAX_PAUSE_S).
_SECOND_PAUSE_S = 0.0002
_SECOND_BRISK_S = 0.05
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
        opened: list[int] = []
        try:
            for name in (path, path + "-line", path + "-queue"):
                opened.append(os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        self._fd, self._front, self._queue = opened

    def acquire(self, while_waiting: Callable[[], object] | None = None) -> None:
        """Take the lock: at once if it is free and the front has not waited long,
        else in line. ``while_waiting`` runs between tries second in line and at the
        front (the store reads what the holder appends, so it has less to read once it
        holds the lock)."""
        if not self.line_overdue() and self._try():
            return
        deadline = None
        if self.timeout_s and self.timeout_s > 0 and not _patient:
            deadline = time.monotonic() + self.timeout_s
        if deadline is None:
            fcntl.flock(self._queue, fcntl.LOCK_EX)  # asleep until the second moves up
        else:
            self._poll(self._queue, deadline, None, _MAX_PAUSE_S)
        try:
            self._poll(self._front, deadline, while_waiting, _SECOND_PAUSE_S)
        finally:
            fcntl.flock(self._queue, fcntl.LOCK_UN)
        try:
            os.pwrite(self._front, _STAMP.pack(time.monotonic()), 0)
            self._wait_at_front(deadline, while_waiting)
        finally:
            os.pwrite(self._front, _STAMP.pack(0.0), 0)
            fcntl.flock(self._front, fcntl.LOCK_UN)

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now."""
        return self._try()

    def line_overdue(self) -> bool:
        """Whether the front of the line has waited long enough that newcomers queue."""
        raw = os.pread(self._front, _STAMP.size, 0)
        if len(raw) < _STAMP.size:
            return False  # a new line: nobody has waited yet
        since: float = _STAMP.unpack(raw)[0]
        return since > 0.0 and time.monotonic() - since > _BARGE_FOR_S

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        for fd in (self._fd, self._front, self._queue):
            os.close(fd)

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

    def _poll(
        self,
        fd: int,
        deadline: float | None,
        while_waiting: Callable[[], object] | None,
        pause_max: float,
    ) -> None:
        """Take ``fd``'s flock by trying it, running ``while_waiting`` and pausing."""
        started = time.monotonic()
        pause = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise self._timeout_error()
            if while_waiting is not None:
                while_waiting()
            if now - started > _SECOND_BRISK_S:
                pause_max = _MAX_PAUSE_S  # the front is held up: no need to be quick
            time.sleep(pause)
            pause = min(pause * 2, pause_max)

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


def flock_timeout_from_env(default: float = 30.0) -> float:
    """``FLOCK_TIMEOUT`` in seconds, as SwarmSH reads it (0 = wait forever)."""
    return env_number("FLOCK_TIMEOUT", default)
