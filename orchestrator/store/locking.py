"""The store's hot-path lock: a blocking ``flock`` on a descriptor kept open.

``filelock`` polls a non-blocking lock and sleeps between tries (~5,700 acquisitions/s
and 50-100 ms p99 waits under contention on this class of machine); a blocking
``flock`` is woken by the kernel the moment the holder releases. The lock is shared by
the threads of one process (flock belongs to the open file description), so callers
serialise their own threads first.

``FLOCK_TIMEOUT`` bounds the wait: in the main thread with an interval timer that
interrupts the blocking call, elsewhere by polling with a short back-off.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from orchestrator.errors import LockTimeout

# How long a contended acquire polls before it blocks in the kernel.
_POLL_FOR_S = 0.005


class _Alarm(Exception):
    pass


def _raise_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Alarm


class StoreLock:
    def __init__(self, path: str, timeout_s: float | None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def acquire(self, while_waiting: Callable[[], object] | None = None) -> None:
        """Take the lock. A short contended wait polls and runs ``while_waiting``
        between tries (the store reads what the holder appends, so it has less to
        read once it holds the lock); a longer one blocks in the kernel."""
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
        if self.timeout_s is None or self.timeout_s <= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        elif threading.current_thread() is threading.main_thread():
            self._wait_with_timer(self.timeout_s)
        else:
            self._wait_polling(self.timeout_s)

    def _wait_with_timer(self, timeout_s: float) -> None:
        previous = signal.signal(signal.SIGALRM, _raise_alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm:
            # The alarm may land just after flock returned: then we do hold the lock.
            if not self._try():
                raise self._timeout_error() from None
        finally:
            signal.signal(signal.SIGALRM, previous)

    def _wait_polling(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pause = 0.0001
        while not self._try():
            if time.monotonic() >= deadline:
                raise self._timeout_error()
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def _timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"timed out after {self.timeout_s:g}s waiting for the store lock {self.path}"
            " (another process holds it; raise FLOCK_TIMEOUT or stop that process)"
        )


def flock_timeout_from_env(default: float = 30.0) -> float:
    """``FLOCK_TIMEOUT`` in seconds, as SwarmSH reads it (0 = wait forever)."""
    raw = os.environ.get("FLOCK_TIMEOUT")
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        from orchestrator.errors import InvalidArgument

        raise InvalidArgument(f"FLOCK_TIMEOUT={raw!r} is not a number of seconds") from None
    return value
