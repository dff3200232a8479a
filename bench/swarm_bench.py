"""Supervisor and agents: start-up of 32 agents, restart latency after kill -9, RSS of
an idle agent, end-to-end items/s with a no-op command for 1, 4 and 12 agents.

Each figure has a baseline measured in the same run (bare processes doing nothing,
the same commands run in a plain loop), printed as a ratio.

    python -m bench.swarm_bench [--items 600] [--kills 10] [--write-results]

``--postgres`` runs instead the end-to-end swarm on PostgreSQL (SWARM_TEST_PG_DSN, default
the local server; a fresh schema per run, dropped after) at 4 and 10 agents, with
``claim_batch = 1`` (one claim per item) and with the default (claiming ahead once items
prove short), in alternating rounds, and prints items/s and the ratio on/off:

    python -m bench.swarm_bench --postgres [--items 600] [--rounds 5] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import multiprocess
import psutil
import psycopg

from bench.common import invocation, write_section
from orchestrator.config import DEFAULT_CLAIM_BATCH
from orchestrator.store.file import FileStore

SWARM = str(Path(sys.executable).with_name("swarm"))
DSN = os.environ.get("SWARM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_AGENTS = (4, 10)


def _config(
    root: Path,
    agents: int,
    items: int = 0,
    argv: str = '["true"]',
    store: str = "",
    group: str = "",
) -> None:
    """swarm.toml: one group of ``agents`` no-op command agents; ``store`` and ``group``
    are extra lines of [store] and of the group."""
    work = (
        f'[[work]]\nwork_type = "t"\ndescription = "no-op"\ncount = {items}\n'
        f"payload = {{ argv = {argv} }}\n"
        if items
        else ""
    )
    (root / "swarm.toml").write_text(
        f'[store]\nlease_s = 30\n{store}\n[[agents]]\nname = "w"\ncount = {agents}\n'
        f"max_restarts = 1000\nbackoff_initial_s = 0.05\nstop_timeout_s = 2\n{group}\n{work}"
    )


def _wait(predicate: Any, timeout: float = 60.0, every: float = 0.005) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(every)
    raise TimeoutError("benchmark condition not reached")


def _noop() -> None:
    pass


def bare_processes(count: int) -> float:
    """Baseline: start ``count`` forkserver processes that do nothing, and join them."""
    ctx = multiprocess.get_context("forkserver")
    ctx.Process(target=_noop).start()  # start the fork server outside the timing
    started = time.perf_counter()
    procs = [ctx.Process(target=_noop) for _ in range(count)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - started


def agents_up(root: Path, count: int) -> tuple[float, list[int]]:
    """Seconds from `swarm up --detach` until ``count`` agents are registered."""
    _config(root, count)
    store = FileStore(root / "agent_coordination")
    started = time.perf_counter()
    subprocess.run([SWARM, "up", "--detach"], cwd=root, check=True, capture_output=True)
    _wait(lambda: len(store.list_agents()) >= count)
    elapsed = time.perf_counter() - started
    pids = [a.pid for a in store.list_agents() if a.pid]
    return elapsed, pids


def restart_latency(root: Path, kills: int) -> list[float]:
    """kill -9 one agent after another; time until its replacement is registered."""
    store = FileStore(root / "agent_coordination")
    latencies = []
    for _ in range(kills):
        victim = store.list_agents()[0]
        before = {a.agent_id for a in store.list_agents()}
        os.kill(victim.pid or 0, signal.SIGKILL)
        killed = time.perf_counter()
        _wait(lambda: {a.agent_id for a in store.list_agents()} - before)  # noqa: B023
        latencies.append(time.perf_counter() - killed)
    return latencies


def rss_mb(pids: list[int]) -> float:
    values = []
    for pid in pids:
        try:
            values.append(psutil.Process(pid).memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return statistics.median(values)


def bare_python_rss() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    time.sleep(0.5)
    try:
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.kill()
        proc.wait()


def throughput(root: Path, agents: int, items: int, store: str = "", group: str = "") -> float:
    """Items/s from the first claim to the last completion (from the result files)."""
    _config(root, agents, items, store=store, group=group)
    subprocess.run([SWARM, "up", "--until-drained"], cwd=root, check=True, capture_output=True)
    records = [json.loads(p.read_text()) for p in (root / "real_work_results").glob("*.json")]
    assert len(records) == items and all(r["status"] == "completed" for r in records)
    span = max(r["finished_at"] for r in records) - min(r["started_at"] for r in records)
    return items / span


def loop_baseline(items: int) -> float:
    """Baseline: the same no-op command run ``items`` times in a plain loop."""
    started = time.perf_counter()
    for _ in range(items):
        subprocess.run(["true"], check=True)
    return items / (time.perf_counter() - started)


def pg_throughput(agents: int, items: int, claim_batch: int) -> tuple[float, float]:
    """Items/s of the end-to-end swarm on PostgreSQL (a fresh schema, dropped after),
    and how many items a claim call brought on average (from the operation log: the
    claims of one call share its transaction's time)."""
    schema = f"swarm_bench_{secrets.token_hex(4)}"
    root = Path(tempfile.mkdtemp(prefix="swarm-bench-pg-"))
    store = f'backend = "postgres"\ndsn = "{DSN}"\nschema = "{schema}"\n'
    try:
        rate = throughput(root, agents, items, store, f"claim_batch = {claim_batch}\n")
        with psycopg.connect(DSN, options=f"-c search_path={schema}") as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (by_agent, ts)) FROM events WHERE op = 'claim'"
            ).fetchone()
        per_call = row[0] / row[1] if row and row[1] else 0.0
        return rate, per_call
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def postgres_main(items: int, rounds: int, write_results: bool) -> None:
    """claim_batch = 1 against the default on PostgreSQL, alternating which runs first."""
    load_before = os.getloadavg()
    runs: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for n in range(rounds):
        for agents in PG_AGENTS:
            order = (1, DEFAULT_CLAIM_BATCH) if n % 2 == 0 else (DEFAULT_CLAIM_BATCH, 1)
            for batch in order:
                rate, per_call = pg_throughput(agents, items, batch)
                runs.setdefault((agents, batch), []).append((rate, per_call))
                print(
                    f"round {n + 1} agents={agents:<3} claim_batch={batch:<2}"
                    f" {rate:7.0f} items/s  {per_call:.2f} items per claim call",
                    flush=True,
                )
    load_after = os.getloadavg()
    d = DEFAULT_CLAIM_BATCH
    lines = [
        f"| agents | claim_batch = 1: items/s | claim_batch = {d} (default): items/s |"
        f" **on ÷ off** | per-round on ÷ off | items per claim call, 1 / {d} |",
        "|---|---|---|---|---|---|",
    ]
    for agents in PG_AGENTS:
        off, on = runs[(agents, 1)], runs[(agents, d)]
        off_rate = statistics.median(r for r, _ in off)
        on_rate = statistics.median(r for r, _ in on)
        each = ", ".join(f"{a[0] / b[0]:.2f}" for a, b in zip(on, off, strict=True))
        lines.append(
            f"| {agents} | {off_rate:,.0f} | {on_rate:,.0f} | **{on_rate / off_rate:.2f}x** |"
            f" {each} | {statistics.median(p for _, p in off):.2f} /"
            f" {statistics.median(p for _, p in on):.2f} |"
        )
    table = "\n".join(lines)
    load = (
        f"load average {load_before[0]:.2f} / {load_before[1]:.2f} before,"
        f" {load_after[0]:.2f} / {load_after[1]:.2f} after (1 / 5 min)"
    )
    print(table)
    print(load)
    if write_results:
        with psycopg.connect(DSN) as conn:
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        command = invocation()
        write_section(
            "swarm_bench_pg",
            (
                f"### Agents on PostgreSQL: claiming ahead on and off\n\nCommand:"
                f" `scripts/with-postgres.sh {command}`, {time.strftime('%Y-%m-%d')},"
                f" {os.cpu_count()} cores, PostgreSQL on the same machine (synchronous_commit ="
                f" {sync[0] if sync else '?'}), {load}. Each run is `swarm up --until-drained`"
                f" of {items} no-op command items (`true`) in a fresh schema; items/s from the"
                f" first item started to the last finished (result files), median of {rounds}"
                f" rounds, the two settings alternating which runs first.\n\n{table}\n"
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument(
        "--postgres", action="store_true", help="claim_batch = 1 against the default on PG"
    )
    parser.add_argument("--rounds", type=int, default=5, help="with --postgres")
    args = parser.parse_args()
    if args.postgres:
        postgres_main(args.items, args.rounds, args.write_results)
        return

    rows: list[tuple[str, str, str]] = []
    root = Path(tempfile.mkdtemp(prefix="swarm-bench-"))
    try:
        base_up = bare_processes(args.agents)
        up_s, pids = agents_up(root, args.agents)
        rows.append(
            (
                f"{args.agents} agents registered and claiming",
                f"{up_s:.2f} s",
                f"{up_s / base_up:.1f}x {args.agents} bare forkserver processes ({base_up:.2f} s)",
            )
        )
        idle_rss = rss_mb(pids)
        base_rss = bare_python_rss()
        rows.append(
            (
                "RSS of an idle agent (median)",
                f"{idle_rss:.1f} MB",
                f"{idle_rss / base_rss:.1f}x a bare python ({base_rss:.1f} MB)",
            )
        )
        lat = restart_latency(root, args.kills)
        rows.append(
            (
                f"restart after kill -9 ({args.kills} kills)",
                f"p50 {statistics.median(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms",
                "until the new agent is registered in the store",
            )
        )
        subprocess.run([SWARM, "down"], cwd=root, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base_rate = loop_baseline(args.items)
    for agents in (1, 4, 12):
        root = Path(tempfile.mkdtemp(prefix="swarm-bench-"))
        try:
            rate = throughput(root, agents, args.items)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append(
            (
                f"end-to-end, {agents} agent(s), {args.items} no-op commands",
                f"{rate:,.0f} items/s",
                f"{rate / base_rate:.2f}x `true` run in a plain loop ({base_rate:,.0f}/s)",
            )
        )

    table = "| measure | result | against the baseline |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(table)
    if args.write_results:
        command = invocation()
        write_section(
            "swarm_bench",
            (
                f"## Supervisor and agents\n\nCommand: `{command}` (via"
                f" `make bench`), {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores.\n\n"
                f"{table}\n\nTargets: 32 agents up < 2 s, first restart < 0.5 s, idle agent RSS"
                f" ≤ 60 MB.\n"
            ),
        )


if __name__ == "__main__":
    main()
