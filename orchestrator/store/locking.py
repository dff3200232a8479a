"""The store's hot-path lock: ``flock`` on a descriptor kept open, and a line to wait in.

Writers are serialised by one ``flock`` (``.lock``). Waiting for it is organised so that
the holder keeps a CPU: a contended long-lived process (the supervisor, its agents:
``wait_patiently()``) queues on a second ``flock`` (``.lock-line``) asleep in the kernel,
and only the one at the front of the line polls the store lock (running the caller's
``while_waiting`` between tries, if any). When every waiter polled, 10 or 32 processes
on 2 cores took the CPU from the holder, which then held the lock 3-5 times longer than
its own work took (bench/RESULTS.md, "Issue 20").

A process that finds the store lock free takes it without queueing unless the front
has waited longer than ``_BARGE_FOR_S``: then newcomers let it go first, which bounds
how long the front waits once the lock is free. (A process that has just released the
lock often takes it again before the front can: with holds of ~50 µs this is what sets
the 99th percentile of a wait under saturation, bench/RESULTS.md.) The front writes
when it began to wait, and when it last tried, into ``.lock-line`` (16 bytes), a hint
read without a lock: the store lock alone decides who writes, so a wrong hint costs a
wait, never a double writer. A stamp binds
only while someone holds the line's ``flock`` (a waiter killed with -9 at the front
leaves a stale one, which the next front overwrites) and while the front keeps trying:
one that has not tried for ``_STUCK_S`` (stopped: SIGSTOP, a debugger) is deferred to
no more, by newcomers and by the processes asleep behind it alike. Those sleep in a
thread of their own (``_Sleeper``: a ``flock`` cannot time out) and look at the stamp
every ``_STUCK_CHECK_S``; past a stopped front they wait as one-shot commands do.
The lock is shared by the threads of one process (flock belongs to the open file
description), so callers serialise their own threads first.

One-shot commands keep out of the line (one stopped with Ctrl-Z would hold it): they
poll the lock with a growing pause and give up after ``FLOCK_TIMEOUT``, exiting 4 (no
signal, no thread: an interval timer's SIGALRM would fight any other user of the
signal and works in the main thread only). Long-lived processes wait without a timeout:
the front logs a wait past ``FLOCK_TIMEOUT`` and keeps trying, so a backup script or a
stopped CLI holding the lock delays the swarm instead of ending it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable

from orchestrator.errors import LockTimeout
from orchestrator.numbers import env_number

logger = logging.getLogger(__name__)

# The front of the line waits this long before newcomers stop taking a free lock first,
# and past _STUCK_S it is presumed stopped: newcomers take a free lock first again.
_BARGE_FOR_S = 0.010
_STUCK_S = 1.0
# How often a process asleep in line checks that the front has not stopped.
_STUCK_CHECK_S = 0.25
# The front retries at once (yielding the CPU) this many times before it sleeps.
_YIELDS = 200
# The longest pause between tries: what a waiter may lag behind the release.
_MAX_PAUSE_S = 0.002
# At the start of .lock-line: the monotonic times the front began to wait and last tried
# the lock (0.0, 0.0: nobody at the front).
_STAMP = struct.Struct("dd")
_ALIVE, _ALIVE_AT = struct.Struct("d"), 8
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
        """Take the lock: at once if it is free and the front of the line has not waited
        long, else in line (a one-shot command: polling). ``while_waiting`` runs between
        tries (the store reads what the holder appends, so it has less to read once it
        holds the lock)."""
        if not self._line.holds_back() and self._try():
            return
        wait = _Wait(self)
        if not _patient:
            # A one-shot command keeps out of the line: stopped there (Ctrl-Z), it would
            # hold up every process behind it. It polls, letting an overdue front go first.
            self._poll(wait, while_waiting)
        elif self._line.join():
            try:
                self._line.stamp()
                self._wait_at_front(wait, while_waiting)
            finally:
                self._line.leave()
        else:
            # The front stopped trying (SIGSTOP, a debugger): wait as one-shot commands
            # do, without the line, which defers to that front no more.
            self._poll(wait, while_waiting)
        wait.done()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now."""
        return self._try()

    def line_overdue(self) -> bool:
        """Whether newcomers queue behind the front of the line now."""
        return self._line.holds_back()

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            os.close(self._fd)
        finally:
            self._line.close()

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _try(self) -> bool:
        return _try_flock(self._fd)

    def _poll(self, wait: _Wait, while_waiting: Callable[[], object] | None) -> None:
        pause = 0.0001
        while True:
            if while_waiting is not None:
                while_waiting()
            if not self._line.holds_back() and self._try():
                return
            wait.check()
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE_S)

    def _wait_at_front(self, wait: _Wait, while_waiting: Callable[[], object] | None) -> None:
        tries = 0
        pause = 0.00005
        while True:
            if while_waiting is not None:
                while_waiting()
            if self._try():
                return
            tries += 1
            if tries <= _YIELDS:  # the holder is usually done within a few yields
                os.sched_yield()
                continue
            wait.check()
            self._line.still_trying()  # a slow holder, not a stopped front
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE_S)

    def _timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"timed out after {self.timeout_s:g}s waiting for the store lock {self.path}"
            " (another process holds it or waits ahead; raise FLOCK_TIMEOUT or stop that"
            " process)"
        )


class _Wait:
    """One contended acquire's clock: its deadline (a one-shot command's
    FLOCK_TIMEOUT) or, for a patient process, when to log that it is still waiting."""

    def __init__(self, lock: StoreLock) -> None:
        self._lock = lock
        self._started = time.monotonic()
        # No timeout (FLOCK_TIMEOUT=0): wait forever, silently.
        self._every = lock.timeout_s if lock.timeout_s and lock.timeout_s > 0 else 0.0
        self._deadline = self._started + self._every if self._every and not _patient else None
        self._report_at = self._started + self._every if self._every else None
        self._reported = False

    def check(self) -> None:
        now = time.monotonic()
        if self._deadline is not None and now >= self._deadline:
            raise self._lock._timeout_error()
        if self._report_at is not None and now >= self._report_at:
            self._reported = True
            logger.warning(
                "waited %.0fs for the store lock %s (another process holds it or waits"
                " ahead); still waiting",
                now - self._started,
                self._lock.path,
            )
            self._every = min(max(self._every * 2, _REPORT_EVERY_S), _REPORT_MAX_S)
            self._report_at = now + self._every

    def done(self) -> None:
        if self._reported:
            logger.warning(
                "got the store lock %s after %.1fs",
                self._lock.path,
                time.monotonic() - self._started,
            )


class _Line:
    """The queue in front of the store lock: a ``flock`` held by the front, and the
    front's stamp in the same file (read and written in place: no mapping, which would
    hold a second descriptor). The stamp is a hint: failing to read or write it costs
    nothing but a place in line."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._sleeper: _Sleeper | None = None

    def holds_back(self) -> bool:
        """Whether a newcomer should let the front go first although the store lock may
        be free: the front has waited over _BARGE_FOR_S, tried the lock within
        _STUCK_S (a front stopped longer is passed by), and is still there (the stamp
        of a waiter killed at the front binds nobody)."""
        stamp = self._read_stamp()
        if stamp is None:
            return False
        since, alive = stamp
        now = time.monotonic()
        if not (since > 0.0 and now - since > _BARGE_FOR_S and now - alive < _STUCK_S):
            return False
        if not _try_flock(self._fd):
            return True  # someone is at the front
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def join(self) -> bool:
        """Wait to be at the front of the line: True once there; False when the front
        has stopped trying for _STUCK_S (stopped: SIGSTOP, a debugger)."""
        if self._sleeper is None or self._sleeper.pid != os.getpid():
            if _try_flock(self._fd):
                return True
            if self._sleeper is not None:
                self._sleeper.forget()  # a forked child's copy: its thread is not here
            try:
                self._sleeper = _Sleeper(self._fd)
            except (OSError, RuntimeError) as exc:  # no thread or descriptor to spare
                self._sleeper = None
                logger.warning("cannot wait in line for the store lock: %s", exc)
                return False
        return self._sleeper.wait_for_front(self._front_alive)

    def _front_alive(self) -> float | None:
        """When the front last tried the lock; None when no front has stamped."""
        stamp = self._read_stamp()
        return stamp[1] if stamp is not None and stamp[0] > 0.0 else None

    def _read_stamp(self) -> tuple[float, float] | None:
        """The front's (since, alive); None for a new line, where nobody has waited yet,
        or an unreadable stamp: a hint, which then defers to nobody."""
        try:
            raw = os.pread(self._fd, _STAMP.size, 0)
        except OSError:
            return None
        if len(raw) < _STAMP.size:
            return None
        since, alive = _STAMP.unpack(raw)
        return float(since), float(alive)

    def stamp(self) -> None:
        now = time.monotonic()
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, _STAMP.pack(now, now), 0)

    def still_trying(self) -> None:
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, _ALIVE.pack(time.monotonic()), _ALIVE_AT)

    def leave(self) -> None:
        try:
            with contextlib.suppress(OSError):
                os.pwrite(self._fd, _STAMP.pack(0.0, 0.0), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._sleeper is not None:
            if self._sleeper.pid == os.getpid():
                self._sleeper.close()
            else:
                self._sleeper.forget()
        os.close(self._fd)


class _Sleeper:
    """Waits in line for the process: a thread asleep in the kernel's ``flock`` queue of
    ``.lock-line``, which cannot be given a timeout, while the caller checks now and
    then that the front is still trying. A wait given up on stays queued in the thread
    and passes its place on at once when it comes; until then the process does not
    queue twice. The thread has its own descriptor (the same open file, so the same
    lock), closed only by itself: a descriptor number closed under a queued ``flock``
    could be reused for another file."""

    def __init__(self, line_fd: int) -> None:
        self.pid = os.getpid()
        self._fd = os.dup(line_fd)
        self._mutex = threading.Lock()
        self._asked = threading.Event()
        self._got = threading.Event()
        self._wanted = False  # the caller still waits for the place being queued for
        self._queued = False  # a flock call is outstanding
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="swarm-lock-line", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:
            os.close(self._fd)
            raise

    def wait_for_front(self, front_alive: Callable[[], float | None]) -> bool:
        """True at the front; False when the front has shown no sign of trying the lock
        for _STUCK_S: neither its stamp (``front_alive``) nor, when there is none (a
        front that has not stamped yet, or never will), the time this wait began."""
        with self._mutex:
            # Both under the mutex: a place granted to a wait given up on, and not yet
            # passed on, must not pass for this one's.
            if self._queued:
                return False  # an earlier wait, given up on, is still queued
            if _try_flock(self._fd):
                return True
            self._queued = self._wanted = True
            self._got.clear()
        self._asked.set()
        sign = time.monotonic()
        try:
            while not self._got.wait(_STUCK_CHECK_S):
                alive = front_alive()
                if alive is not None:
                    sign = alive
                if time.monotonic() - sign >= _STUCK_S or not self._thread.is_alive():
                    return not self._give_up()
        except BaseException:
            # Interrupted (KeyboardInterrupt, a handler that raises): not at the front
            # now, and not later either, or the place would be held by nobody waiting.
            if not self._give_up():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            raise
        return True

    def _give_up(self) -> bool:
        """Stop wanting the place queued for: True, or False if it came meanwhile."""
        with self._mutex:
            if self._got.is_set():
                return False
            self._wanted = False
            return True

    def _run(self) -> None:
        while self._next_request():
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as exc:  # the process waits without the line from now on
                logger.warning("cannot wait in line for the store lock: %s", exc.strerror)
                break
            with self._mutex:
                self._queued = False
                if self._closed:
                    break
                if self._wanted:
                    self._got.set()
                else:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)  # given up on: pass it on
        os.close(self._fd)

    def _next_request(self) -> bool:
        """Wait to be asked to queue: True, or False once the line is closed."""
        self._asked.wait()
        self._asked.clear()
        with self._mutex:
            return not self._closed

    def close(self) -> None:
        with self._mutex:
            self._closed = True
        self._asked.set()

    def forget(self) -> None:
        """In a forked child: the thread stayed in the parent; close this copy of its
        descriptor only (the parent's mutex may have been held at the fork)."""
        os.close(self._fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def flock_timeout_from_env(default: float = 30.0) -> float:
    """``FLOCK_TIMEOUT`` in seconds, as SwarmSH reads it (0 = wait forever)."""
    return env_number("FLOCK_TIMEOUT", default)
