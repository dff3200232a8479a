"""Supervisor and agents: start-up of 32 agents, restart latency after kill -9, RSS of
an idle agent, end-to-end items/s with a no-op command for 1, 4 and 12 agents.

Each figure has a baseline measured in the same run (bare processes doing nothing,
the same commands run in a plain loop), printed as a ratio.

    python -m bench.swarm_bench [--items 600] [--kills 10] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench.common import write_section
from orchestrator.store.file import FileStore

SWARM = str(Path(sys.executable).with_name("swarm"))


def _config(root: Path, agents: int, items: int = 0, argv: str = '["true"]') -> None:
    work = (
        f'[[work]]\nwork_type = "t"\ndescription = "no-op"\ncount = {items}\n'
        f"payload = {{ argv = {argv} }}\n"
        if items
        else ""
    )
    (root / "swarm.toml").write_text(
        f'[store]\nlease_s = 30\n\n[[agents]]\nname = "w"\ncount = {agents}\n'
        f"max_restarts = 1000\nbackoff_initial_s = 0.05\nstop_timeout_s = 2\n\n{work}"
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


def throughput(root: Path, agents: int, items: int) -> float:
    """Items/s from the first claim to the last completion (from the result files)."""
    _config(root, agents, items)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()

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
        command = "python -m bench.swarm_bench " + " ".join(sys.argv[1:])
        write_section(
            "swarm_bench",
            (
                f"## Supervisor and agents\n\nCommand: `{command.strip()}` (via"
                f" `make bench`), {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores.\n\n"
                f"{table}\n\nTargets: 32 agents up < 2 s, first restart < 0.5 s, idle agent RSS"
                f" ≤ 60 MB.\n"
            ),
        )


if __name__ == "__main__":
    main()
