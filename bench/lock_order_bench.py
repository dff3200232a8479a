"""Does handing the store lock over in order pay? The file store's claim+complete+add
cycle (``bench.store_bench``'s processes) under three locks, alternating in one run:

- ``line``: the store's own lock (``store/locking.py``): a process that finds the lock
  free takes it unless the front of the line has waited over 10 ms;
- ``queue``: ``bench.queue_lock`` in strict order, every waiter woken alone;
- ``streaks``: the same queue, but a holder that comes back within ``--promise-ms`` of
  its release keeps its turn for up to ``--streak-ms``.

Besides cycles/s and the claim's latency it prints how long the lock was held per turn
and how many turns went to the process that had held it last (whose SQLite page cache
is still valid: another writer's commit empties it).

    python -m bench.lock_order_bench [--seconds 3] [--procs 10 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import queue_lock, store_bench
from bench.common import invocation, run_processes, write_section
from orchestrator.store import file as file_store
from orchestrator.store import locking

VARIANTS = ("line", "queue", "streaks")


def _measured(base: type[Any], last_holder: str) -> type[Any]:
    """``base`` counting each turn's hold and whether the last holder took it again."""

    class Measured(base):  # type: ignore[misc, valid-type]
        turns = 0
        again = 0
        held_s = 0.0
        _since = 0.0
        _me = struct.pack("i", os.getpid())
        _last = os.open(last_holder, os.O_RDWR | os.O_CREAT, 0o644)

        def acquire(self, *args: Any) -> None:
            super().acquire(*args)
            cls = type(self)
            cls.turns += 1
            if os.pread(cls._last, 4, 0) == cls._me:
                cls.again += 1
            else:
                os.pwrite(cls._last, cls._me, 0)
            cls._since = time.perf_counter()

        def release(self) -> None:
            type(self).held_s += time.perf_counter() - type(self)._since
            super().release()

    return Measured


def _worker(variant: str, streak: tuple[float, float], *args: Any) -> None:
    """``store_bench``'s process, with the file store's lock swapped for ``variant``."""
    out = args[-1]
    queue_lock.configure(*streak)
    base: type[Any] = locking.StoreLock if variant == "line" else queue_lock.QueueLock
    lock = _measured(base, os.path.join(os.path.dirname(out), "last-holder"))
    file_store.StoreLock = lock  # type: ignore[misc]
    store_bench._worker("file", *args)
    Path(out + ".turns").write_text(f"{lock.turns} {lock.again} {lock.held_s}")


def run(variant: str, procs: int, seconds: float, streak: tuple[float, float]) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="swarm-lock-order-")
    try:
        path = os.path.join(root, "store")
        store_bench._backend("file").prefill(path, 1_000)
        elapsed, latencies = run_processes(
            _worker,
            lambda i, ready, go, out: (variant, streak, path, i, seconds, ready, go, out),
            procs,
            root,
        )
        turns = again = 0
        held = 0.0
        for i in range(procs):
            t, a, h = Path(os.path.join(root, f"lat{i}.turns")).read_text().split()
            turns, again, held = turns + int(t), again + int(a), held + float(h)

        def pct(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

        return {
            "cycles": len(latencies) / elapsed,
            "p50": pct(0.50),
            "p99": pct(0.99),
            "hold_us": held / max(turns, 1) * 1e6,
            "again": again / max(turns, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def alternation(cycles: int, mmap_bytes: int) -> tuple[float, float]:
    """One process, two file stores on one directory: µs per claim+complete+add cycle
    when one store does every cycle, and when the two take turns (each then finds the
    other's commit: SQLite empties its page cache). ``mmap_bytes``: SQLite's
    ``mmap_size`` for both."""
    root = tempfile.mkdtemp(prefix="swarm-lock-order-")
    try:
        path = os.path.join(root, "store")
        backend = store_bench._backend("file")
        backend.prefill(path, 1_000)
        stores = [backend(path), backend(path)]
        next_id = 2_000_000_000

        def cycle(store: Any) -> None:
            nonlocal next_id
            work_id = store.claim("agent")
            store.complete(work_id, "agent")
            store.add(next_id)
            next_id += 1

        for store in stores:
            cycle(store)  # opens its connection
            store.store._state.db.execute(f"PRAGMA mmap_size = {mmap_bytes}")
        per_cycle = []
        for alternate in (False, True):
            started = time.perf_counter()
            for i in range(cycles):
                cycle(stores[i % 2 if alternate else 0])
            per_cycle.append((time.perf_counter() - started) / cycles * 1e6)
        return per_cycle[0], per_cycle[1]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, nargs="+", default=[10, 32])
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs per variant")
    parser.add_argument("--streak-ms", type=float, default=0.4)
    parser.add_argument("--promise-ms", type=float, default=0.4)
    parser.add_argument(
        "--alternate-cycles", type=int, default=0, help="only the one-process alternation"
    )
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.alternate_cycles:
        locking.wait_patiently()
        for _ in range(args.rounds):
            for mmap_bytes in (0, 256 << 20):
                alone, turns = alternation(args.alternate_cycles, mmap_bytes)
                print(
                    f"mmap_size {mmap_bytes:>9}: one store {alone:.0f} us/cycle,"
                    f" two taking turns {turns:.0f} us/cycle (+{turns - alone:.0f})",
                    flush=True,
                )
        return
    streak = (args.streak_ms / 1e3, args.promise_ms / 1e3)
    rows = []
    for procs in args.procs:
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                setting = streak if variant == "streaks" else (0.0, 0.0)
                result = run(variant, procs, args.seconds, setting)
                runs[variant].append(result)
                print(
                    f"N={procs:<3} {variant:8} {result['cycles']:7,.0f} cycles/s"
                    f"  claim p50 {result['p50']:.3f} p99 {result['p99']:.3f} ms"
                    f"  hold {result['hold_us']:.0f} us  same holder {result['again']:.0%}",
                    flush=True,
                )
        line = runs["line"]
        for variant in VARIANTS:
            got = runs[variant]
            pairs = zip(got, line, strict=True)
            rows.append(
                f"| {procs} | {variant} | "
                + " / ".join(f"{r['cycles']:,.0f}" for r in got)
                + " | "
                + " / ".join(f"{r['cycles'] / b['cycles']:.2f}x" for r, b in pairs)
                + " | "
                + " / ".join(f"{r['p99']:.1f}" for r in got)
                + " | "
                + " / ".join(f"{r['hold_us']:.0f}" for r in got)
                + " | "
                + " / ".join(f"{r['again']:.0%}" for r in got)
                + " |"
            )
    table = (
        "| N | lock | cycles/s (runs) | against line | claim p99 ms | hold µs per turn"
        " | turns to the last holder |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    print("\n" + table)
    if args.write_results:
        write_section(
            "lock_order_bench",
            "## Store lock: in order or not (issue 20)\n\n"
            f"Command: `{invocation()}`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores;"
            " the file store's claim+complete+add cycle (`bench.store_bench`, 1,000 items)"
            " with its lock swapped; variants alternate. Streaks: up to"
            f" {args.streak_ms:g} ms, the front holding off {args.promise_ms:g} ms after each"
            " release.\n\n" + table,
        )


if __name__ == "__main__":
    main()
