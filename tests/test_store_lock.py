"""The store lock's line: waiters queue, newcomers stop taking the lock past an overdue
front, a waiter killed with -9 anywhere in line blocks nobody, and writers stay one at
a time."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.errors import LockTimeout
from orchestrator.store.locking import StoreLock

from .conftest import wait_for
from .workers import count_under_lock

# Takes the front of the line (its flock and its stamp, as the lock does), says so,
# then keeps it until killed.
_IN_LINE = """
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, struct.pack("dd", time.monotonic(), time.monotonic()), 0)
print("in line", flush=True)
while True:  # a front trying the lock: "still trying" every 10 ms
    os.pwrite(fd, struct.pack("d", time.monotonic()), 8)
    time.sleep(0.01)
"""


@contextmanager
def _in_line(place: Path) -> Iterator[subprocess.Popen[bytes]]:
    waiter = subprocess.Popen([sys.executable, "-c", _IN_LINE, str(place)], stdout=subprocess.PIPE)
    try:
        assert waiter.stdout is not None and waiter.stdout.readline() == b"in line\n"
        yield waiter
    finally:
        waiter.kill()
        waiter.wait()
        assert waiter.stdout is not None
        waiter.stdout.close()


def test_newcomers_let_an_overdue_front_go_first_and_a_killed_front_binds_nobody(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".lock"
    lock = StoreLock(str(path), timeout_s=0.3)
    with _in_line(tmp_path / ".lock-line") as front:
        wait_for(lock.line_overdue, timeout=30)
        # The store lock is free, but the front has waited too long: a newcomer lets it
        # go first (and, with a timeout, gives up) instead of taking the lock.
        with pytest.raises(LockTimeout, match="FLOCK_TIMEOUT"):
            lock.acquire()
        assert lock.try_acquire()  # it was free all along
        lock.release()
        front.send_signal(signal.SIGKILL)
        front.wait()
        # The kernel dropped the dead front's flock: its stamp, still there, binds nobody.
        assert (tmp_path / ".lock-line").read_bytes() != bytes(16)
        assert not lock.line_overdue()
        lock.acquire()
        lock.release()
    lock.close()


def test_a_front_stopped_for_long_holds_back_newcomers_no_more(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    lock = StoreLock(str(path), timeout_s=0.3)
    with _in_line(tmp_path / ".lock-line") as front:
        front.send_signal(signal.SIGSTOP)
        try:
            wait_for(lock.line_overdue, timeout=30)
            # Still stopped at the front, past _STUCK_S: newcomers take the free lock.
            wait_for(lambda: not lock.line_overdue(), timeout=30)
            lock.acquire()
            lock.release()
        finally:
            front.send_signal(signal.SIGCONT)
    lock.close()


# A supervisor or agent (patient: no timeout) waiting for the store lock.
# Appended to a waiter's script: told that the front is gone, it waits until the flock
# its line thread queued has returned, then reports whether that place was passed on.
_PLACE_PASSED_ON = """
sys.stdin.readline()
sleeper = lock._line._sleeper
while True:
    with sleeper._mutex:
        if not sleeper._queued:
            break
    time.sleep(0.01)
line = os.open(sys.argv[1] + "-line", os.O_RDWR)
try:
    fcntl.flock(line, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("passed on", flush=True)
except BlockingIOError:
    print("kept", flush=True)
"""

# A supervisor or agent (patient: no timeout) waiting for the store lock.
_PATIENT = (
    """
import fcntl, os, sys, time
from orchestrator.store import locking
locking.wait_patiently()
lock = locking.StoreLock(sys.argv[1], 0)
lock.acquire()
print("got it", flush=True)
lock.release()
"""
    + _PLACE_PASSED_ON
)


def _waiter(script: str, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _passed_on(waiter: subprocess.Popen[str]) -> str:
    assert waiter.stdin is not None and waiter.stdout is not None
    waiter.stdin.write("the front is gone\n")
    waiter.stdin.close()
    answer = _line_within(waiter, 60)
    assert waiter.wait(timeout=30) == 0
    waiter.stdout.close()
    return answer


def test_those_asleep_behind_a_stopped_front_pass_it_by(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    holder = StoreLock(str(path), 0)
    assert holder.try_acquire()
    with _in_line(tmp_path / ".lock-line") as front:
        # Finds the store lock held and the line taken: it sleeps behind the front.
        patient = _waiter(_PATIENT, path)
        try:
            wait_for(lambda: _asleep_in_line(patient.pid, tmp_path / ".lock-line"), timeout=30)
            front.send_signal(signal.SIGSTOP)
            holder.release()
            # Stopped at the front for over a second, it is passed by: the sleeper gets
            # the free lock while the front stays stopped.
            assert _line_within(patient, 60) == "got it\n"
        finally:
            front.send_signal(signal.SIGCONT)
    # The front gone, the place the sleeper had queued for comes to it: passed on.
    assert _passed_on(patient) == "passed on\n"
    holder.close()


def _line_within(process: subprocess.Popen[str], seconds: float) -> str:
    """The next line the process prints, or a failure after ``seconds`` (killing it)."""
    assert process.stdout is not None
    ready = select.poll()
    ready.register(process.stdout, select.POLLIN)
    if not ready.poll(seconds * 1000):
        process.kill()
        process.wait()
        raise AssertionError(f"no line within {seconds:g} s")
    return process.stdout.readline()


def _asleep_in_line(pid: int, line: Path) -> bool:
    """Whether process ``pid`` waits for the flock of ``line`` (the kernel's list of
    locks shows each blocked request as ``->``, with the process and the file)."""
    file = os.stat(line)
    where = f"{os.major(file.st_dev):02x}:{os.minor(file.st_dev):02x}:{file.st_ino}"
    for entry in Path("/proc/locks").read_text().splitlines():
        fields = entry.split()
        if "->" in fields and "FLOCK" in fields and str(pid) in fields and where in fields:
            return True
    return False


# A patient waiter whose wait is broken off by a signal handler that raises.
_INTERRUPTED = (
    """
import fcntl, os, signal, sys, time
from orchestrator.store import locking
locking.wait_patiently()
lock = locking.StoreLock(sys.argv[1], 0)

def stop(signum, frame):
    raise TimeoutError

signal.signal(signal.SIGUSR1, stop)  # sent once it is asleep in line
try:
    lock.acquire()
except TimeoutError:
    print("interrupted", flush=True)
"""
    + _PLACE_PASSED_ON
)


def test_a_wait_broken_off_by_a_signal_leaves_its_place_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    holder = StoreLock(str(path), 0)
    assert holder.try_acquire()
    with _in_line(tmp_path / ".lock-line"):
        waiter = _waiter(_INTERRUPTED, path)
        wait_for(lambda: _asleep_in_line(waiter.pid, tmp_path / ".lock-line"), timeout=30)
        waiter.send_signal(signal.SIGUSR1)
        assert _line_within(waiter, 60) == "interrupted\n"
    # The front gone, the place the broken-off wait had queued for comes to it.
    assert _passed_on(waiter) == "passed on\n"
    holder.release()
    holder.close()


def test_a_timed_newcomer_gives_up_behind_the_front_and_a_killed_front_blocks_nobody(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".lock"
    lock = StoreLock(str(path), 0.2)
    holder = StoreLock(str(path), 0)
    assert holder.try_acquire()  # the store lock is taken: nobody may take it first
    with _in_line(tmp_path / ".lock-line"):
        with pytest.raises(LockTimeout):
            lock.acquire()
    # Killed where it waited: its place is free, and the next waiter gets through.
    holder.release()
    lock.acquire()
    lock.release()
    for opened in (lock, holder):
        opened.close()


@pytest.mark.parametrize("patient", [False, True])
def test_processes_in_line_never_hold_the_lock_together(tmp_path: Path, patient: bool) -> None:
    base = str(tmp_path / "store")
    Path(base + ".count").write_bytes(b"0")
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=count_under_lock, args=(base, 400, patient)) for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert Path(base + ".count").read_bytes() == b"3200"
