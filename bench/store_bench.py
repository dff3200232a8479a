"""Claim+complete throughput and claim latency: the file store next to SQLite in WAL mode,
and the file store with SwarmSH's JSON views on next to off.

Each of N processes loops claim -> complete -> enqueue a replacement, so the queue stays
at its starting size; the SQLite baseline runs the same three statements as the usual
single-row claim transaction. Both run in the same invocation, so the ratio is fair.
The views comparison alternates off and on runs (N=10 by default) and compares medians.

    python -m bench.store_bench [--seconds 3] [--write-results] [--views-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from bench.common import invocation, percentile_ms, run_processes, write_section
from orchestrator.records import WorkItem
from orchestrator.store import DEFAULT_VIEWS_INTERVAL_S, long_lived_process
from orchestrator.store.file import FileStore

PRIORITIES = ["critical", "high", "medium", "low"]


def _item(n: int) -> WorkItem:
    return WorkItem(
        work_item_id=f"w{n:09d}",
        work_type="bench",
        description="benchmark item",
        priority=PRIORITIES[n % 4],
    )


# -- backends ----------------------------------------------------------------------------


class FileBackend:
    name = "file"

    def __init__(self, path: str) -> None:
        self.store = FileStore(path)

    @staticmethod
    def prefill(path: str, size: int) -> None:
        store = FileStore(path)
        for start in range(0, size, 5000):
            store.add_many([_item(n) for n in range(start, min(size, start + 5000))])
        store.close()

    def claim(self, agent: str) -> str | None:
        item = self.store.claim(agent)
        return item.work_item_id if item else None

    def complete(self, work_id: str, agent: str) -> None:
        self.store.complete(work_id, "success", agent_id=agent)

    def add(self, n: int) -> None:
        self.store.add_work(_item(n))


class FileViewsBackend(FileBackend):
    """The file store as agents open it: SwarmSH's views refreshed when due."""

    name = "file+views"

    def __init__(self, path: str) -> None:
        self.store = FileStore(path, views_interval_s=DEFAULT_VIEWS_INTERVAL_S)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, work_type TEXT, description TEXT, priority INTEGER,
    created REAL, status TEXT, agent TEXT, claimed_at REAL, lease_expires REAL)
"""
# The baseline's three statements (bench.shared_state_bench runs them too).
CLAIM_SQL = (
    "UPDATE items SET status = 'claimed', agent = ?, claimed_at = ?, lease_expires = ?"
    " WHERE id = (SELECT id FROM items WHERE status = 'pending'"
    " ORDER BY priority, created LIMIT 1) RETURNING id"
)
COMPLETE_SQL = (
    "UPDATE items SET status = 'completed' WHERE id = ? AND agent = ? AND status = 'claimed'"
)
INSERT_SQL = (
    "INSERT INTO items VALUES (?, 'bench', 'benchmark item', ?, ?, 'pending', NULL, NULL, NULL)"
)


class SqliteBackend:
    name = "sqlite-wal"

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(os.path.join(path, "bench.db"), isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    @staticmethod
    def prefill(path: str, size: int) -> None:
        os.makedirs(path, exist_ok=True)
        db = sqlite3.connect(os.path.join(path, "bench.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
        db.execute("CREATE INDEX IF NOT EXISTS queue ON items (status, priority, created)")
        now = time.time()
        db.execute("BEGIN")
        db.executemany(INSERT_SQL, ((f"w{n:09d}", n % 4, now + n * 1e-6) for n in range(size)))
        db.execute("COMMIT")
        db.close()

    def claim(self, agent: str) -> str | None:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute(CLAIM_SQL, (agent, now, now + 60)).fetchone()
        self.db.execute("COMMIT")
        return row[0] if row else None

    def complete(self, work_id: str, agent: str) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        cur = self.db.execute(COMPLETE_SQL, (work_id, agent))
        self.db.execute("COMMIT")
        assert cur.rowcount == 1

    def add(self, n: int) -> None:
        self.db.execute(INSERT_SQL, (f"w{n:09d}", n % 4, time.time()))


BACKENDS: dict[str, Any] = {
    "file": FileBackend,
    "sqlite-wal": SqliteBackend,
    "file+views": FileViewsBackend,
}
TABLE = ("file", "sqlite-wal")


# -- one run -----------------------------------------------------------------------------


def _backend(backend: str | type) -> Any:
    """A backend class by name, or the class itself (benches measuring other designs)."""
    return BACKENDS[backend] if isinstance(backend, str) else backend


def _worker(
    backend: str | type, path: str, index: int, seconds: float, ready: Any, go: Event, out: str
) -> None:
    long_lived_process()  # as agents: 32 processes loading 100k items queue a while
    store = _backend(backend)(path)
    agent = f"agent{index}"
    next_id = 1_000_000_000 + index * 10_000_000
    # Warm up (the file store loads its state here), then wait for the others.
    work_id = store.claim(agent)
    if work_id:
        store.complete(work_id, agent)
        store.add(next_id)
        next_id += 1
    ready.release()
    go.wait()
    latencies: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        work_id = store.claim(agent)
        latencies.append(time.perf_counter_ns() - started)
        if work_id is None:
            continue
        store.complete(work_id, agent)
        store.add(next_id)
        next_id += 1
    with open(out, "w") as fh:
        fh.write(" ".join(map(str, latencies)))


@dataclass
class Result:
    backend: str | type
    procs: int
    size: int
    cycles_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def run_one(backend: str | type, procs: int, size: int, seconds: float) -> Result:
    root = tempfile.mkdtemp(prefix="swarm-bench-")
    try:
        path = os.path.join(root, "store")
        cls = _backend(backend)
        cls.prefill(path, size)
        # A design with a process of its own (a server) runs it for the measured processes.
        with getattr(cls, "serving", nullcontext)(path):
            elapsed, latencies = run_processes(
                _worker,
                lambda i, ready, go, out: (backend, path, i, seconds, ready, go, out),
                procs,
                root,
            )
        return Result(
            backend,
            procs,
            size,
            len(latencies) / elapsed,
            statistics.median(latencies) / 1e6,
            percentile_ms(latencies, 0.99),
            latencies[-1] / 1e6,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cli_claim_latency(runs: int) -> tuple[float, float]:
    """Median wall time of `swarm claim` as a new process, and of a bare interpreter."""
    root = tempfile.mkdtemp(prefix="swarm-bench-cli-")
    swarm = str(Path(sys.executable).with_name("swarm"))
    env = dict(os.environ, SWARM_STORE=os.path.join(root, "store"), AGENT_ID="bench")

    def median_of(argv: list[str]) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=root)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    try:
        return median_of([swarm, "claim", "feature", "bench", "high"]), median_of(
            [sys.executable, "-c", "pass"]
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def views_comparison(procs: int, size: int, seconds: float, rounds: int) -> str:
    """Views off and on, alternated ``rounds`` times; a Markdown table of the medians."""
    runs: dict[str, list[Result]] = {"file": [], "file+views": []}
    for _ in range(rounds):
        for backend, results in runs.items():
            r = run_one(backend, procs, size, seconds)
            results.append(r)
            print(
                f"{backend:10} N={procs:<3} items={size:<7} {r.cycles_per_s:9.0f} cycles/s"
                f"  claim p99 {r.p99_ms:.3f} ms",
                flush=True,
            )
    off, on = (statistics.median(r.cycles_per_s for r in runs[b]) for b in runs)
    p99 = {b: statistics.median(r.p99_ms for r in rs) for b, rs in runs.items()}
    return (
        "| N | items | views off cycles/s | views on cycles/s | on/off | p99 off ms | p99 on ms |"
        "\n|---|---|---|---|---|---|---|\n"
        f"| {procs} | {size:,} | {off:,.0f} | {on:,.0f} | {on / off:.2f}x |"
        f" {p99['file']:.3f} | {p99['file+views']:.3f} |"
    )


def write_views_section(tables: list[str], seconds: float, rounds: int) -> None:
    command = invocation()
    write_section(
        "store_views",
        (
            "## Store: SwarmSH's JSON views on and off\n\n"
            f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
            f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end."
            f" Off and on alternate, {rounds} runs of {seconds:g} s each; medians. On: every"
            f" process refreshes work_claims.json, agent_status.json, agents.json and"
            f" coordination_log.json under the lock when they are older than"
            f" {DEFAULT_VIEWS_INTERVAL_S:g} s (agents' default); target: on/off ≥ 0.9x.\n\n"
            + "\n\n".join(tables)
            + "\n"
        ),
    )


# -- report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per run")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 10, 32])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--cli-runs", type=int, default=30)
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--views-only", action="store_true", help="only views on vs off")
    parser.add_argument("--views-procs", type=int, default=10)
    parser.add_argument("--views-sizes", type=int, nargs="+", default=[1_000])
    parser.add_argument("--views-rounds", type=int, default=3, help="0 skips the views runs")
    args = parser.parse_args()

    views = [
        views_comparison(args.views_procs, size, args.seconds, args.views_rounds)
        for size in (args.views_sizes if args.views_rounds > 0 else [])
    ]
    print("\n\n".join(views))
    if args.write_results and views:
        write_views_section(views, args.seconds, args.views_rounds)
    if args.views_only:
        return

    results: dict[tuple[str, int, int], Result] = {}
    for size in args.sizes:
        for procs in args.procs:
            for backend in TABLE:
                r = run_one(backend, procs, size, args.seconds)
                results[(backend, procs, size)] = r
                print(
                    f"{backend:10} N={procs:<3} items={size:<7} {r.cycles_per_s:9.0f} cycles/s"
                    f"  claim p50 {r.p50_ms:.3f} ms  p99 {r.p99_ms:.3f} ms  max {r.max_ms:.1f} ms",
                    flush=True,
                )
    cli_ms, python_ms = cli_claim_latency(args.cli_runs) if args.cli_runs else (0.0, 0.0)
    print(f"swarm claim as a new process: median {cli_ms:.0f} ms (bare python: {python_ms:.0f} ms)")

    lines = [
        "| N | items | file cycles/s | SQLite-WAL cycles/s | file/SQLite | file p50 ms |"
        " file p99 ms | file max ms | SQLite p99 ms | file 100k/1k |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    small, large = min(args.sizes), max(args.sizes)
    for size in args.sizes:
        for procs in args.procs:
            f, s = results[("file", procs, size)], results[("sqlite-wal", procs, size)]
            scale = (
                results[("file", procs, large)].cycles_per_s
                / results[("file", procs, small)].cycles_per_s
            )
            lines.append(
                f"| {procs} | {size:,} | {f.cycles_per_s:,.0f} | {s.cycles_per_s:,.0f} |"
                f" {f.cycles_per_s / s.cycles_per_s:.2f}x | {f.p50_ms:.3f} | {f.p99_ms:.3f} |"
                f" {f.max_ms:.1f} | {s.p99_ms:.3f} | {scale:.2f}x |"
            )
    table = "\n".join(lines)
    print(table)
    if args.write_results:
        command = invocation()
        write_section(
            "store_bench",
            (
                f"## Store: claim+complete cycles, file journal vs SQLite WAL\n\n"
                f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
                f" {platform.machine()}, {os.cpu_count()} cores,"
                f" Python {platform.python_version()},"
                f" SQLite {sqlite3.sqlite_version}.\n"
                f"A cycle is claim + complete + enqueue a replacement; latency is of the claim"
                f" call alone, as seen by the caller (lock wait included). {args.seconds:g} s"
                f" measured per row.\n\n{table}\n"
                + (
                    f"\n`swarm claim` run as a new process each time: median **{cli_ms:.0f} ms**"
                    f" (a bare `python -c pass`: {python_ms:.0f} ms; SwarmSH's claim: 592 ms).\n"
                    if args.cli_runs
                    else ""
                )
            ),
        )


if __name__ == "__main__":
    main()
