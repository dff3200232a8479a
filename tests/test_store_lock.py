"""The store lock's line: waiters queue, newcomers stop taking the lock past an overdue
front, a front killed with -9 blocks nobody, and writers stay one at a time."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import LockTimeout
from orchestrator.store import locking
from orchestrator.store.locking import StoreLock

from .conftest import wait_for
from .workers import count_under_lock

# Joins the line, stamps itself as its front, says so, then waits to be killed.
_FRONT = """
import sys, time
from orchestrator.store.locking import _Line
line = _Line(sys.argv[1])
line.join(None, RuntimeError)
line.stamp()
print("front", flush=True)
time.sleep(600)
"""


def _front_of_line(lock_path: Path) -> subprocess.Popen[bytes]:
    front = subprocess.Popen(
        [sys.executable, "-c", _FRONT, f"{lock_path}-line"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert front.stdout is not None and front.stdout.readline() == b"front\n"
    return front


def test_newcomers_queue_behind_an_overdue_front_and_a_killed_front_blocks_nobody(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".lock"
    lock = StoreLock(str(path), timeout_s=0.3)
    front = _front_of_line(path)
    try:
        probe = locking._Line(f"{path}-line")
        wait_for(probe.overdue, timeout=30)
        # The store lock is free, but the front has waited too long: a newcomer queues
        # behind it (and, with a timeout, gives up) instead of taking the lock first.
        with pytest.raises(LockTimeout, match="FLOCK_TIMEOUT"):
            lock.acquire()
        assert lock.try_acquire()  # it was free all along
        lock.release()
    finally:
        front.send_signal(signal.SIGKILL)
        front.wait()
        assert front.stdout is not None
        front.stdout.close()
    # The kernel dropped the dead front's flock; its stamp is stale, not binding.
    assert probe.overdue()
    lock.acquire()
    lock.release()
    assert not probe.overdue()  # the next front cleared the stamp when it left the line
    probe.close()
    lock.close()


def test_a_timed_newcomer_gives_up_while_the_line_is_held(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    front = _front_of_line(path)
    try:
        lock = StoreLock(str(path), timeout_s=0.2)
        holder = StoreLock(str(path), timeout_s=0)
        assert holder.try_acquire()  # the store lock is taken: nobody may barge
        with pytest.raises(LockTimeout):
            lock.acquire()
        holder.release()
    finally:
        front.kill()
        front.wait()
        assert front.stdout is not None
        front.stdout.close()
    lock.acquire()
    lock.release()


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
