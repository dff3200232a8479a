"""Claims/s and claim latency: the PostgreSQL store next to the file store, and a bare
psycopg loop that runs only the SKIP LOCKED claim statement (the database's own limit
on this machine), all in the same run. The store is measured claiming one item per call
and claiming ``--batch`` per call (``claim_many``, what an agent running short items
does); so is the bare statement (``LIMIT 1`` and ``LIMIT batch``).

    python -m bench.pg_bench [--seconds 3] [--procs 1 10 32] [--batch 8] [--write-results]

The DSN comes from SWARM_TEST_PG_DSN (default: the local server); each run uses a
fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import psycopg

from bench.common import invocation, percentile_ms, prefill_file_store, run_processes, write_section
from orchestrator.config import DEFAULT_CLAIM_BATCH
from orchestrator.store.base import claim_many

DSN = os.environ.get("SWARM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BARE_CLAIM = (
    "UPDATE work_items SET status = 'claimed', agent_id = %s, claimed_at = swarm_now(),"
    " lease_expires_at = swarm_now() + 60 WHERE work_item_id = (SELECT work_item_id"
    " FROM work_items WHERE status = 'pending' ORDER BY priority_rank, created_at, seq"
    " FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING work_item_id"
)
BARE_CLAIM_MANY = (
    "UPDATE work_items SET status = 'claimed', agent_id = %s, claimed_at = swarm_now(),"
    " lease_expires_at = swarm_now() + 60 WHERE work_item_id IN (SELECT work_item_id"
    " FROM work_items WHERE status = 'pending' ORDER BY priority_rank, created_at, seq"
    " FOR UPDATE SKIP LOCKED LIMIT %s) RETURNING work_item_id"
)


def _prefill_pg(schema: str, count: int) -> None:
    from orchestrator.store.postgres import PostgresStore

    PostgresStore(DSN, schema=schema).close()  # creates the schema
    with psycopg.connect(DSN, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute(
            "INSERT INTO work_items (work_item_id, work_type, description, priority,"
            " priority_rank, status, max_attempts, created_at, updated_at)"
            " SELECT 'w' || g, 'bench', 'benchmark item', 'medium', g %% 4, 'pending', 3,"
            " swarm_now() + g * 1e-6, swarm_now() FROM generate_series(1, %s) g",
            (count,),
        )
        conn.execute("ANALYZE work_items")


def _claimer(
    kind: str,
    target: str,
    index: int,
    seconds: float,
    batch: int,
    ready: Any,
    go: Event,
    out: str,
) -> None:
    agent = f"agent{index}"
    claim: Callable[[], int]
    if kind.startswith("bare-sql"):
        conn = psycopg.connect(DSN, autocommit=True, options=f"-c search_path={target}")
        conn.execute("SELECT 1")
        if batch == 1:

            def claim() -> int:
                return len(conn.execute(BARE_CLAIM, (agent,)).fetchall())
        else:

            def claim() -> int:
                return len(conn.execute(BARE_CLAIM_MANY, (agent, batch)).fetchall())
    else:
        from orchestrator.wiring import open_store

        store = open_store(DSN if kind == "postgres" else target)
        if kind == "postgres":
            from orchestrator.store.postgres import PostgresStore

            store.close()
            store = PostgresStore(DSN, schema=target)
        store.list_agents()  # warm up: connect / load the state
        if batch == 1:

            def claim() -> int:
                return 0 if store.claim(agent) is None else 1
        else:

            def claim() -> int:
                return len(claim_many(store, agent, count=batch))

    ready.release()
    go.wait()
    latencies: list[int] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        got = claim()
        if not got:
            break
        # One entry per item claimed (claims/s counts items), each the whole call's time.
        latencies.extend([time.perf_counter_ns() - started] * got)
    with open(out, "w") as fh:
        fh.write(" ".join(map(str, latencies)))


def run(
    kind: str, procs: int, seconds: float, items: int, batch: int = 1
) -> tuple[float, float, float]:
    root = tempfile.mkdtemp(prefix="swarm-pgbench-")
    schema = f"bench_{secrets.token_hex(4)}"
    target = schema if kind != "file" else os.path.join(root, "store")
    try:
        if kind == "file":
            prefill_file_store(target, items)
        else:
            _prefill_pg(schema, items)
        elapsed, lat = run_processes(
            _claimer,
            lambda i, ready, go, out: (kind, target, i, seconds, batch, ready, go, out),
            procs,
            root,
        )
        return len(lat) / elapsed, statistics.median(lat) / 1e6, percentile_ms(lat, 0.99)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if kind != "file":
            with psycopg.connect(DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 10, 32])
    parser.add_argument("--items", type=int, default=60_000)
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_CLAIM_BATCH,
        help="items per batched claim (the agents' default claim_batch)",
    )
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    with psycopg.connect(DSN) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    b = args.batch
    lines = [
        f"| N | bare SKIP LOCKED claims/s | store claims/s, 1 per call | store/bare |"
        f" store claims/s, {b} per call | **store {b}/call ÷ bare** | bare claims/s, {b} per"
        f" statement | store ÷ bare, both {b} | store p99 ms, 1 / {b} per call | bare p99 ms |"
        f" file store claims/s | file p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for procs in args.procs:
        bare = run("bare-sql", procs, args.seconds, args.items)
        pg = run("postgres", procs, args.seconds, args.items)
        pg_b = run("postgres", procs, args.seconds, args.items, b)
        bare_b = run("bare-sql", procs, args.seconds, args.items, b)
        file = run("file", procs, args.seconds, args.items)
        for name, r in (
            ("bare-sql", bare),
            ("postgres", pg),
            (f"pg x{b}", pg_b),
            (f"bare x{b}", bare_b),
            ("file", file),
        ):
            print(
                f"{name:9} N={procs:<3} {r[0]:8.0f} claims/s  p50 {r[1]:.3f} ms  p99 {r[2]:.3f} ms",
                flush=True,
            )
        lines.append(
            f"| {procs} | {bare[0]:,.0f} | {pg[0]:,.0f} | {pg[0] / bare[0]:.2f}x |"
            f" {pg_b[0]:,.0f} | **{pg_b[0] / bare[0]:.2f}x** | {bare_b[0]:,.0f} |"
            f" {pg_b[0] / bare_b[0]:.2f}x | {pg[2]:.3f} / {pg_b[2]:.3f} | {bare[2]:.3f} |"
            f" {file[0]:,.0f} | {file[2]:.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write_results:
        command = invocation()
        write_section(
            "pg_bench",
            (
                f"## PostgreSQL store: claims, against the bare SKIP LOCKED statement\n\n"
                f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
                f" {os.cpu_count()} cores, PostgreSQL on the same machine, synchronous_commit ="
                f" {sync[0] if sync else '?'}. Each process claims in a loop for {args.seconds:g} s"
                f" from {args.items:,} pending items; a call is one transaction. A batched"
                f" call's latency counts once per item it brought.\n\n{table}\n"
            ),
        )


if __name__ == "__main__":
    main()
