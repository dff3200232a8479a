"""Swarm-wide limits against a rate-limited provider: the fake Anthropic server of the
tests (tests/fake_llm.py) enforcing 600 requests/min and 60,000 input tokens/min (a
bucket of 2 s of each, refilled continuously), 16 claude agents, 400 items, each call
taking 50-500 ms. Side by side in one run: with ``[[limits]]`` at the server's figures,
and without (each agent retries its own 429s with backoff, as before limits).

    python -m bench.limits_bench [--items 400] [--agents 16] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_section
from tests.fake_llm import Bucket, FakeLLM

RPM = 600
ITPM = 60_000
SERVER_BURST_S = 2.0
SWARM = str(Path(sys.executable).with_name("swarm"))


def config(url: str, items: int, agents: int, limited: bool, store: str) -> str:
    text = f"""[store]
path = "{store}"
lease_s = 60

[[agents]]
name = "llm"
count = {agents}
backend = "claude"
model = "claude-bench"
host = "{url}"
max_tokens = 50
retries = 4
retry_backoff_s = 0.5
timeout_s = 30

[[work]]
work_type = "ask"
description = "a question for the benchmark"
count = {items}
"""
    if limited:
        # The server's figures; a slightly smaller burst: a call reaches the server a
        # moment after its admission (see the README).
        text += f"""
[[limits]]
name = "bench"
backend = "claude"
requests_per_minute = {RPM}
input_tokens_per_minute = {ITPM}
burst_s = 1.5
"""
    return text


def run(items: int, agents: int, limited: bool) -> dict[str, Any]:
    server = FakeLLM(
        limits={
            "requests": Bucket(RPM, burst_s=SERVER_BURST_S),
            "input_tokens": Bucket(ITPM, burst_s=SERVER_BURST_S),
        },
        call_s=(0.05, 0.5),
    )
    with tempfile.TemporaryDirectory() as folder, server:
        root = Path(folder)
        (root / "swarm.toml").write_text(
            config(server.url, items, agents, limited, str(root / "store"))
        )
        env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
        env |= {"ANTHROPIC_API_KEY": "bench", "SWARM_NO_LIVE": "1", "TELEMETRY_ENABLED": "0"}
        started = time.monotonic()
        proc = subprocess.run(
            [SWARM, "up", "--until-drained"], cwd=root, env=env, capture_output=True, text=True
        )
        if proc.returncode not in (0, 1):
            raise RuntimeError(proc.stderr[-2000:])
        results = [json.loads(p.read_text()) for p in (root / "real_work_results").glob("*.json")]
        accepted = sorted(server.accepted)
        calls = len(accepted) + server.throttled
    span = accepted[-1] - accepted[0] if len(accepted) > 1 else 1.0
    return {
        "limited": limited,
        "wall_s": round(time.monotonic() - started, 1),
        "accepted": len(accepted),
        "rpm": round(len(accepted) / span * 60, 1),
        "throttled": server.throttled,
        "throttled_pct": round(100 * server.throttled / calls, 2) if calls else 0.0,
        "completed": sum(1 for r in results if r["status"] == "completed"),
        "dead": sum(1 for r in results if r["status"] == "dead"),
        "max_in_flight": server.max_in_flight,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    rows = [run(args.items, args.agents, limited) for limited in (True, False)]
    lines = [
        "## Limits: 16 claude agents against a provider enforcing 600 requests/min",
        "",
        "Command: `python -m bench.limits_bench --write-results`, "
        f"{time.strftime('%Y-%m-%d')}, 2 cores shared with other work. Fake Anthropic"
        f" server (tests/fake_llm.py): {RPM} requests/min and {ITPM:,} input tokens/min,"
        f" buckets of {SERVER_BURST_S:g} s, calls of 50-500 ms; {args.items} items,"
        f" {args.agents} agents. Requests/min are over the time from the first accepted"
        " call to the last.",
        "",
        "| run | wall s | accepted calls | requests/min | vs limit | 429s | 429 % | completed"
        " | dead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = "with `[[limits]]`" if row["limited"] else "without limits"
        lines.append(
            f"| {name} | {row['wall_s']} | {row['accepted']} | {row['rpm']} |"
            f" {row['rpm'] / RPM:.2f}x | {row['throttled']} | {row['throttled_pct']} |"
            f" {row['completed']} | {row['dead']} |"
        )
    body = "\n".join(lines)
    print(body)
    if args.write_results:
        write_section("limits_bench", body)


if __name__ == "__main__":
    main()
