"""The ceiling of a store whose writers take turns under the store's flock and keep
their own copy of the state: N processes loop take the lock (in line, as agents
do) -> read what the others appended -> append one 400-byte record -> release, and
spend a set CPU time on each record they read, standing in for replaying it.

With no replay cost this is the lock and the journal alone; with the file store's
(~4 us per record in CPython) it shows how far the per-record replay caps N
processes on this machine whatever the operation itself costs.

    python -m bench.lock_bench [--seconds 3] [--procs 1 10 32] [--replay-us 0 2 4 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from multiprocessing.synchronize import Event
from typing import Any

from bench.common import invocation, run_processes, write_section
from orchestrator.store import locking

RECORD = b"r" * 399 + b"\n"


def _worker(path: str, replay_us: float, seconds: float, ready: Any, go: Event, out: str) -> None:
    locking.wait_patiently()
    lock = locking.StoreLock(os.path.join(path, ".lock"), None)
    fd = os.open(os.path.join(path, "journal"), os.O_RDWR | os.O_APPEND)
    offset = os.fstat(fd).st_size

    def catch_up() -> None:
        nonlocal offset
        size = os.fstat(fd).st_size
        if size <= offset:
            return
        records = os.pread(fd, size - offset, offset).count(b"\n")
        offset = size
        until = time.thread_time() + records * replay_us * 1e-6
        while time.thread_time() < until:
            pass

    ready.release()
    go.wait()
    latencies: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        catch_up()
        lock.acquire(catch_up)
        catch_up()
        offset += os.write(fd, RECORD)
        lock.release()
        latencies.append(time.perf_counter_ns() - started)
    with open(out, "w") as fh:
        fh.write(" ".join(map(str, latencies)))


def ops_per_s(procs: int, replay_us: float, seconds: float) -> float:
    root = tempfile.mkdtemp(prefix="swarm-lock-bench-")
    try:
        open(os.path.join(root, "journal"), "wb").close()
        elapsed, latencies = run_processes(
            _worker,
            lambda i, ready, go, out: (root, replay_us, seconds, ready, go, out),
            procs,
            root,
        )
        return len(latencies) / elapsed
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 10, 32])
    parser.add_argument("--replay-us", type=float, nargs="+", default=[0.0, 2.0, 4.0, 6.0])
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for procs in args.procs:
        rates = [ops_per_s(procs, replay, args.seconds) for replay in args.replay_us]
        print(f"N={procs:<3} " + "  ".join(f"{r:9,.0f}" for r in rates), flush=True)
        rows.append(
            f"| {procs} | " + " | ".join(f"{r:,.0f} ({r / rates[0]:.2f}x)" for r in rates) + " |"
        )
    head = " | ".join(f"replay {us:g} µs/record: ops/s" for us in args.replay_us)
    table = f"| N | {head} |\n|---|" + "---|" * len(args.replay_us) + "\n" + "\n".join(rows)
    print("\n" + table)
    if args.write_results:
        command = invocation()
        write_section(
            "lock_bench",
            "## Store lock: the ceiling a per-record replay puts on N processes\n\n"
            f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
            f" {os.cpu_count()} cores. Each process takes the store lock in line, reads"
            " what the others appended, spends the replay cost on each record read, and"
            " appends one record; ops/s over all processes, and the ratio to no replay.\n\n"
            + table,
        )


if __name__ == "__main__":
    main()
