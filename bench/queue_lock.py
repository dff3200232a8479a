"""A sketch, not used by the store: the store lock with its waiters in order.

Measured by ``bench.lock_order_bench`` against the store's own lock (``store/locking.py``:
waiters in a line, and a process that finds the lock free takes it unless the front has
waited over 10 ms). Here each waiter is woken alone, in the order it came: a CLH queue
built of ``flock``s. Every process has two slot files in ``.lock-slots/`` (it alternates:
the successor of its last turn may not have looked at that slot yet); it locks one,
writes its name into ``.lock-queue`` (the tail) and remembers the name it found there,
its predecessor. It sleeps in ``poll`` on a named pipe beside its predecessor's slot,
which the owner writes a byte to after unlocking the slot, then polls the store lock,
yielding the CPU. A process unlocks its slot as soon as it holds the store lock, so the
next one wakes while it works. The store lock alone decides who writes: the queue only
orders the tries. A waiter killed with -9 leaves its slot unlocked; one stopped is
passed by its successor once its slot shows no sign of life for ``_STUCK_S``.

``configure(streak_s, promise_s)``: with a streak, a holder that came back within
``promise_s`` of its last release may keep its turn until ``streak_s`` has passed since
it began, the front holding off ``promise_s`` after each release (0, 0: strict order).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import select
import struct
import time
from collections.abc import Callable

from orchestrator.errors import LockTimeout
from orchestrator.store.locking import _try_flock, _Wait

logger = logging.getLogger(__name__)

# A waiter whose slot shows no sign of life for this long is passed by its successor.
_STUCK_S = 1.0
# How often a sleeping waiter writes that it is alive and looks at its predecessor.
_STUCK_CHECK_S = 0.25
# The front retries at once (yielding the CPU) this long before it sleeps between tries:
# only one process does, and a hold takes ~50 us.
_SPIN_S = 0.002
# Waiting for a flock held for moments (the tail's, a glance at a slot): tries at once.
_YIELDS = 200
# The longest pause between tries: what a waiter may lag behind the release.
_MAX_PAUSE_S = 0.002
# The tail: the name of the last slot to join, NUL-padded.
_NAME_BYTES = 64
# After the name in the tail file: the monotonic time the front began to try the lock
# (0.0: nobody is trying), and until when the last holder promised to be back.
_TIME = struct.Struct("d")
_SINCE_AT, _PROMISE_AT = _NAME_BYTES, _NAME_BYTES + 8
# A holder that came back soon after its last release may keep the lock this long in
# all; between its turns, the front holds off for _PROMISE_S.
_STREAK_S = 0.0
_PROMISE_S = 0.0
# Beside each slot: a named pipe its owner writes a byte to when it unlocks the slot.
_WAKE = ".wake"
# In a slot: the monotonic time its owner last showed it was alive.
_ALIVE = struct.Struct("d")


def configure(streak_s: float, promise_s: float) -> None:
    global _STREAK_S, _PROMISE_S
    _STREAK_S, _PROMISE_S = streak_s, promise_s


class QueueLock:
    def __init__(self, path: str, timeout_s: float | None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._queue = _Queue(path + "-queue", path + "-slots")
        except BaseException:
            os.close(self._fd)
            raise
        self._streak_from = 0.0  # when this process's current run of turns began
        self._released_at = -1.0
        self._came_back = False  # whether it took the lock again soon after its release
        self._promised_until = 0.0

    def acquire(self, while_waiting: Callable[[], object] | None = None) -> None:
        """Take the lock, in turn. ``while_waiting`` runs between tries at the front."""
        now = time.monotonic()
        self._came_back = now - self._released_at < _PROMISE_S
        if now < self._promised_until and _try_flock(self._fd):
            return  # back within its promise: the front held off for it
        if not self._queue.front_waiting(now) and _try_flock(self._fd):
            self._streak_from = now
            return
        wait = _Wait(self)  # type: ignore[arg-type]  # the same shape
        place = self._queue.join(wait)
        try:
            if place is not None:
                place.wait_for_turn(wait)
            self._take(wait, place, while_waiting)
        finally:
            if place is not None:
                place.leave()  # the next in line starts trying now, while this one works
        self._streak_from = time.monotonic()
        wait.done()

    def try_acquire(self) -> bool:
        """Take the lock only if it is free now (out of turn)."""
        return _try_flock(self._fd)

    def release(self) -> None:
        now = self._released_at = time.monotonic()
        if self._came_back and now - self._streak_from < _STREAK_S:
            # Its caches warm (SQLite's pages are the last writer's), it will likely be
            # back within _PROMISE_S: the front holds off that long.
            self._promised_until = now + _PROMISE_S
            self._queue.promise(self._promised_until)
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            os.close(self._fd)
        finally:
            self._queue.close()

    def __enter__(self) -> QueueLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _take(
        self, wait: _Wait, place: _Place | None, while_waiting: Callable[[], object] | None
    ) -> None:
        now = time.monotonic()
        if now >= self._queue.promised_until() and _try_flock(self._fd):
            return
        spin_until = now + _SPIN_S
        self._queue.stamp_front(now)
        pause = 0.00005
        try:
            while True:
                if while_waiting is not None:
                    while_waiting()
                now = time.monotonic()
                if now >= self._queue.promised_until() and _try_flock(self._fd):
                    return
                if now < spin_until:  # the holder is usually done by then
                    os.sched_yield()
                    continue
                wait.check()
                if place is not None:
                    place.alive()  # a slow holder, not a stopped waiter
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
        finally:
            self._queue.stamp_front(0.0)

    def _timeout_error(self) -> LockTimeout:
        return LockTimeout(
            f"timed out after {self.timeout_s:g}s waiting for the store lock {self.path}"
            " (another process holds it or waits ahead; raise FLOCK_TIMEOUT or stop that"
            " process)"
        )


class _Queue:
    """The tail file and this process's two slots. A process alternates between its
    slots: the successor of its last turn may not have looked at that slot yet when it
    joins again, and must not find it locked for the new turn (it would wait behind a
    place that waits for it)."""

    def __init__(self, tail_path: str, slots_dir: str) -> None:
        self._slots_dir = slots_dir
        self._tail = os.open(tail_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pid = -1
        self._names: list[bytes] = []
        self._slots: list[int] = []
        self._turn = 0
        self._wakes: list[int] = []
        self._others: dict[bytes, tuple[int, int | None]] = {}  # other slots, opened once
        try:
            os.makedirs(slots_dir, mode=0o755, exist_ok=True)
            _remove_dead_slots(slots_dir)
            self._own_slots()
        except BaseException:
            self.close()
            raise

    def join(self, wait: _Wait) -> _Place | None:
        """Join the tail of the queue; None when a ``flock`` it needs has been held for
        _STUCK_S (by a process stopped while it joined, or looked at a slot)."""
        if self._pid != os.getpid():
            self._after_fork()
        turn = self._turn
        slot = self._slots[turn]
        if not _flock_soon(slot, wait):  # free but for a successor's glance
            return None
        if not _flock_soon(self._tail, wait):
            fcntl.flock(slot, fcntl.LOCK_UN)
            return None
        name = self._names[turn]
        try:
            ahead = os.pread(self._tail, _NAME_BYTES, 0).rstrip(b"\0")
            os.pwrite(self._tail, name.ljust(_NAME_BYTES, b"\0"), 0)
        except BaseException:
            fcntl.flock(slot, fcntl.LOCK_UN)
            raise
        finally:
            fcntl.flock(self._tail, fcntl.LOCK_UN)
        self._turn = turn ^ 1
        return _Place(self, slot, self._wakes[turn], ahead if ahead != name else b"")

    def front_waiting(self, now: float) -> bool:
        """Whether a process at the front tries the lock (for less than _STUCK_S: one
        killed there leaves its stamp behind): newcomers queue behind it."""
        since = self._read_time(_SINCE_AT)
        if since > 0.0 and now - since < _STUCK_S:
            return True
        try:
            last = os.pread(self._tail, _NAME_BYTES, 0).rstrip(b"\0")
        except OSError:
            return False
        if not last or last in self._names:
            return False
        opened = self.other(last)
        if opened is None or _try_flock(opened[0]):
            if opened is not None:
                fcntl.flock(opened[0], fcntl.LOCK_UN)
            return False
        return True  # someone is asleep in the queue

    def stamp_front(self, since: float) -> None:
        self._write_time(_SINCE_AT, since)

    def promised_until(self) -> float:
        return self._read_time(_PROMISE_AT)

    def promise(self, until: float) -> None:
        self._write_time(_PROMISE_AT, until)

    def _read_time(self, at: int) -> float:
        try:
            raw = os.pread(self._tail, _TIME.size, at)
        except OSError:
            return 0.0
        return float(_TIME.unpack(raw)[0]) if len(raw) == _TIME.size else 0.0

    def _write_time(self, at: int, value: float) -> None:
        with contextlib.suppress(OSError):  # a hint: a wrong one costs an order
            os.pwrite(self._tail, _TIME.pack(value), at)

    def other(self, name: bytes) -> tuple[int, int | None] | None:
        """Another process's slot and the read end of its wake-up pipe (None if it has
        none); None once the slot is gone (its process ended and a later one removed
        it: nobody waits there)."""
        opened = self._others.get(name)
        if opened is None:
            try:
                path = os.path.join(self._slots_dir, name.decode())
                slot = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (OSError, UnicodeDecodeError):
                return None
            try:
                wake: int | None = os.open(path + _WAKE, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                wake = None
            if len(self._others) >= 256:  # processes come and go: forget the old ones
                self._forget_others()
            opened = self._others[name] = (slot, wake)
        return opened

    def _forget_others(self) -> None:
        for slot, wake in self._others.values():
            os.close(slot)
            if wake is not None:
                os.close(wake)
        self._others.clear()

    def _own_slots(self) -> None:
        self._pid = os.getpid()
        token = f"{self._pid}-{secrets.token_hex(4)}"
        for turn in (0, 1):
            name = f"{token}.{turn}"
            path = os.path.join(self._slots_dir, name)
            self._slots.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
            self._names.append(name.encode())
            os.mkfifo(path + _WAKE, 0o644)
            # Read and write: writing never blocks, and the pipe never lacks a writer
            # while this process lives (a successor sees it hang up when it dies).
            self._wakes.append(os.open(path + _WAKE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))

    def _after_fork(self) -> None:
        """A forked child shares its parent's slots (their flocks are the parent's): it
        gets its own, and leaves the parent's descriptors to the parent."""
        for fd in [*self._slots, *self._wakes]:
            os.close(fd)  # this copy only: the parent's flocks stay
        self._forget_others()
        self._slots, self._wakes, self._names = [], [], []
        self._turn = 0
        self._own_slots()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._forget_others()
        for fd in [*self._slots, *self._wakes, self._tail]:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._pid == os.getpid():
            for name in self._names:
                for suffix in ("", _WAKE):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self._slots_dir, name.decode() + suffix))
        self._slots, self._wakes = [], []


class _Place:
    """A place in the queue: this process's locked slot (and the pipe that wakes its
    successor), and the slot ahead of it."""

    def __init__(self, queue: _Queue, slot: int, wake: int, ahead: bytes) -> None:
        self._queue = queue
        self._slot = slot
        self._wake = wake
        self._ahead = ahead
        self._left = False

    def wait_for_turn(self, wait: _Wait) -> None:
        """Return once the slot ahead is unlocked (its owner holds the store lock, left,
        or died), or its owner showed no sign of life for _STUCK_S (then this one goes
        ahead of it). Asleep in ``poll`` on the slot's pipe, which its owner writes to
        after unlocking it; every _STUCK_CHECK_S awake to look at the time."""
        opened = self._queue.other(self._ahead) if self._ahead else None
        if opened is None:
            return
        slot, wake = opened
        if _try_flock(slot):
            fcntl.flock(slot, fcntl.LOCK_UN)
            return
        waker = None
        if wake is not None:
            waker = select.poll()
            waker.register(wake, select.POLLIN)
        pause = 0.0001
        next_check = time.monotonic() + _STUCK_CHECK_S
        while True:
            if wake is not None:
                _drain(wake)  # before looking: a wake-up written after it is kept
            if _try_flock(slot):
                fcntl.flock(slot, fcntl.LOCK_UN)
                return
            if waker is not None:
                events = waker.poll(_STUCK_CHECK_S * 1000)
                if events and not events[0][1] & select.POLLIN:
                    waker = None  # hung up without a word: look at the slot instead
            else:
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + _STUCK_CHECK_S
                wait.check()
                self.alive()
                if self._ahead_stuck(slot, wait):
                    return

    def _ahead_stuck(self, slot: int, wait: _Wait) -> bool:
        sign = wait._started
        with contextlib.suppress(OSError):
            raw = os.pread(slot, _ALIVE.size, 0)
            if len(raw) == _ALIVE.size:
                sign = max(sign, _ALIVE.unpack(raw)[0])
        if time.monotonic() - sign < _STUCK_S:
            return False
        logger.warning("passing a waiter for the store lock that shows no sign of life")
        return True

    def alive(self) -> None:
        _write_alive(self._slot)

    def leave(self) -> None:
        if not self._left:
            self._left = True
            fcntl.flock(self._slot, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):  # full of unread wake-ups: it wakes anyway
                os.write(self._wake, b"\0")


def _flock_soon(fd: int, wait: _Wait) -> bool:
    """Lock ``fd``, held by others only for moments: False past _STUCK_S of trying."""
    pause = 0.00005
    while True:
        for _ in range(_YIELDS):
            if _try_flock(fd):
                return True
            os.sched_yield()
        wait.check()
        if time.monotonic() - wait._started >= _STUCK_S:
            logger.warning("the store lock's queue is held up; waiting without it")
            return False
        time.sleep(pause)
        pause = min(pause * 2, _MAX_PAUSE_S)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while len(os.read(fd, 4096)) == 4096:
            pass


def _write_alive(fd: int) -> None:
    with contextlib.suppress(OSError):  # a sign of life is a hint: failing costs a place
        os.pwrite(fd, _ALIVE.pack(time.monotonic()), 0)


def _remove_dead_slots(slots_dir: str) -> None:
    """Remove the slots of processes that have ended (named ``pid-token.turn``); one
    found locked or of a live process stays."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(slots_dir):
            pid_text = entry.name.partition("-")[0]
            if not pid_text.isdigit() or _alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _try_flock(fd):
                        os.unlink(entry.path)
                finally:
                    os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's: alive
    return True
