"""Claims stay O(log n) with dependencies: claim+complete cycles with 100,000 blocked
items waiting on an open parent, against the same queue without them, per backend.

One process loops claim -> complete -> enqueue a replacement (as store_bench) over 1,000
ready items; the blocked store adds 100,000 children of one held parent, which a claim
must never look at. The two stores of a backend are measured in alternating slices of
the same run: the ratio is what counts.

    python -m bench.pipeline_bench [--seconds 2] [--blocked 100000] [--write-results]
    (PostgreSQL rows: SWARM_TEST_PG_DSN, as scripts/with-postgres.sh sets it)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from typing import Any

from bench.common import percentile_ms, write_section
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore

READY = 1000


def _ready(n: int) -> WorkItem:
    return WorkItem(f"w{n:09d}", "bench", "ready item")


def _fill(store: Any, blocked: int) -> None:
    for start in range(0, READY, 1000):
        store.add_many([_ready(n) for n in range(start, min(READY, start + 1000))])
    if not blocked:
        return
    store.add_work(WorkItem("root", "root", "the open parent", priority="critical"))
    store.claim("holder")  # the parent is held: every child stays blocked
    for start in range(0, blocked, 5000):
        store.add_many(
            [
                WorkItem(f"b{n:09d}", "bench", "blocked child", parents=["root"])
                for n in range(start, min(blocked, start + 5000))
            ]
        )


class Runner:
    """claim -> complete -> enqueue a replacement on one store, in slices."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.cycles = 0
        self.seconds = 0.0
        self.latencies: list[int] = []
        self.n = 10**8

    def run(self, seconds: float) -> None:
        store = self.store
        started = time.perf_counter()
        ended = started + seconds
        while time.perf_counter() < ended:
            t0 = time.perf_counter_ns()
            item = store.claim("bench")
            self.latencies.append(time.perf_counter_ns() - t0)
            assert item is not None and item.work_type == "bench" and not item.parents
            store.complete(item.work_item_id, "success", agent_id="bench")
            self.n += 1
            store.add_work(_ready(self.n))
            self.cycles += 1
        self.seconds += time.perf_counter() - started

    def result(self) -> tuple[float, list[int]]:
        return self.cycles / self.seconds, sorted(self.latencies)


def _interleaved(stores: tuple[Any, Any], seconds: float) -> list[tuple[float, list[int]]]:
    """Both stores measured in alternating quarter-second slices: the machine's load
    (other processes) falls on both alike."""
    runners = [Runner(store) for store in stores]
    for runner in runners:
        runner.run(0.2)  # warm-up: caches, plans
        runner.cycles, runner.seconds, runner.latencies = 0, 0.0, []
    for _ in range(max(1, int(seconds / 0.25))):
        for runner in runners:
            runner.run(0.25)
    return [runner.result() for runner in runners]


def _file(blocked: int, seconds: float) -> list[tuple[float, list[int]]]:
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as folder:
        stores = (FileStore(os.path.join(folder, "none")), FileStore(os.path.join(folder, "b")))
        _fill(stores[0], 0)
        _fill(stores[1], blocked)
        try:
            return _interleaved(stores, seconds)
        finally:
            for store in stores:
                store.close()


def _postgres(blocked: int, seconds: float) -> list[tuple[float, list[int]]] | None:
    dsn = os.environ.get("SWARM_TEST_PG_DSN")
    if not dsn:
        return None
    import psycopg

    from orchestrator.store.postgres import PostgresStore

    schemas = [f"bench_pipeline_{os.getpid()}_{n}" for n in (0, 1)]
    stores = tuple(PostgresStore(dsn, schema=schema) for schema in schemas)
    try:
        _fill(stores[0], 0)
        _fill(stores[1], blocked)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"ANALYZE {schema}.work_items")
        return _interleaved((stores[0], stores[1]), seconds)
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--blocked", type=int, default=100_000)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, run in (("file", _file), ("postgres", _postgres)):
        measured = run(args.blocked, args.seconds)
        if measured is None:
            print(f"{name}: skipped (no SWARM_TEST_PG_DSN)")
            continue
        base, loaded = measured
        rows.append((name, base, loaded))
        print(
            f"{name}: {base[0]:,.0f} cycles/s without blocked items, {loaded[0]:,.0f} with"
            f" {args.blocked:,} ({loaded[0] / base[0]:.2f}x); claim p50"
            f" {percentile_ms(base[1], 0.5):.3f} -> {percentile_ms(loaded[1], 0.5):.3f} ms"
        )
    if not args.write_results:
        return
    lines = [
        "## Pipelines: claims with blocked items",
        "",
        f"Command: `scripts/with-postgres.sh python -m bench.pipeline_bench --seconds"
        f" {args.seconds:g} --write-results`, {time.strftime('%Y-%m-%d')},"
        f" {platform.machine()}, {os.cpu_count()} cores. One process; {READY:,} ready"
        f" items; the blocked store adds {args.blocked:,} children of one held parent;"
        " the two stores alternate in 0.25 s slices.",
        "",
        "| backend | cycles/s, none blocked | cycles/s, blocked | ratio | claim p50 ms"
        " (none / blocked) | claim p99 ms (none / blocked) |",
        "|---|---|---|---|---|---|",
    ]
    for name, base, loaded in rows:
        lines.append(
            f"| {name} | {base[0]:,.0f} | {loaded[0]:,.0f} | {loaded[0] / base[0]:.2f}x |"
            f" {percentile_ms(base[1], 0.5):.3f} / {percentile_ms(loaded[1], 0.5):.3f} |"
            f" {percentile_ms(base[1], 0.99):.3f} / {percentile_ms(loaded[1], 0.99):.3f} |"
        )
    write_section("pipeline_bench", "\n".join(lines))


if __name__ == "__main__":
    main()
