"""Per-command latency: `swarm add|claim|progress|complete` as new processes, next to
SwarmSH's `coordination_helper.sh claim`, alternating in the same run.

SwarmSH users script one process per operation, so a command's whole life counts:
interpreter start, imports, the store, the span. Each round runs, one after the other:
SwarmSH's claim (twice when its python3 is a shim: as is, and with the interpreter the
shim would run), `swarm add`, `swarm claim`, `swarm progress` and `swarm complete` of
the item just claimed, a script that only opens the store and claims (the floor under
any Python CLI) and a bare `python -c pass`; each tool works in its own scratch
directory with telemetry on (spans in ./telemetry_spans.jsonl, SwarmSH's in its
COORDINATION_DIR). Medians and p90 are over the rounds; ratios are of medians against
SwarmSH's claim of the same rounds. Wall time is the measure; CPU time (user + system
of the process and its children) is printed too, as it varies less on a busy machine.

    python -m bench.cli_bench [--rounds 25] [--before DIR] [--write-results]

--before DIR adds the same swarm commands run from the source tree DIR (for instance
`git archive <commit> | tar -x -C DIR`) with this interpreter, as
`python -m orchestrator.cli`.
SwarmSH (MIT) is only run, never imported or copied: /work/shared/baselines/swarmsh/
or SWARMSH_SCRIPT.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import invocation, write_section

SWARMSH = os.environ.get("SWARMSH_SCRIPT", "/work/shared/baselines/swarmsh/coordination_helper.sh")
# What SwarmSH's script runs (its header names jq; the claim path also uses the others).
SWARMSH_NEEDS = ("bash", "jq", "flock", "bc", "openssl", "python3", "date")
SWARM = str(Path(sys.executable).with_name("swarm"))
# The floor under any CLI: the interpreter, the store and one claim; no parsing, no span.
STORE_ONLY = """
import os, sys
from orchestrator.ids import new_agent_id, new_work_id
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore
store = FileStore(os.environ["SWARM_STORE"])
item = WorkItem(new_work_id(), "feature", "bench item", priority="high")
print(store.claim_new(new_agent_id(), item).work_item_id)
store.close()
"""
CLAIMED = re.compile(r"\b(work_\d+_[0-9a-f]{8})\b")


@dataclass
class Series:
    label: str
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.wall_ms)

    def p90(self) -> float:
        ordered = sorted(self.wall_ms)
        return ordered[max(0, round(0.9 * len(ordered)) - 1)]

    def cpu(self) -> float:
        return statistics.median(self.cpu_ms)


def timed(series: Series | None, argv: list[str], cwd: str, env: dict[str, str]) -> str:
    """Run ``argv`` once; record its wall and CPU time; return its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    if series is not None:
        series.wall_ms.append(wall)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        series.cpu_ms.append(cpu * 1000)
    return done.stdout


def missing_tools() -> list[str]:
    return [tool for tool in SWARMSH_NEEDS if shutil.which(tool) is None]


def unshimmed_path(env: dict[str, str], folder: str) -> str | None:
    """A PATH whose python3 is the interpreter itself, when python3 is a script (a
    pyenv shim runs a dozen processes before Python starts: SwarmSH's claim calls
    python3 once, so the shim is a good part of its time)."""
    found = shutil.which("python3", path=env.get("PATH"))
    if found is None:
        return None
    with open(found, "rb") as file:
        if file.read(2) != b"#!":
            return None
    real = subprocess.run(
        [found, "-c", "import sys; print(sys.executable)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    os.makedirs(folder)
    os.symlink(real, os.path.join(folder, "python3"))
    return f"{folder}{os.pathsep}{env.get('PATH', '')}"


class SwarmRunner:
    """One swarm installation, in its own scratch directory and store."""

    def __init__(self, name: str, argv: list[str], root: str, env: dict[str, str]) -> None:
        self.argv = argv
        self.cwd = os.path.join(root, name)
        os.makedirs(self.cwd)
        self.env = env | {"SWARM_STORE": os.path.join(self.cwd, "agent_coordination")}
        self.series = {
            command: Series(f"{name}: swarm {command}")
            for command in ("add", "claim", "progress", "complete")
        }

    def round(self, record: bool) -> None:
        def run(command: str, *args: str) -> str:
            series = self.series[command] if record else None
            return timed(series, [*self.argv, command, *args], self.cwd, self.env)

        run("add", "feature", "bench item", "high")
        claimed = CLAIMED.search(run("claim", "feature", "bench item", "high"))
        assert claimed, "swarm claim printed no work id"
        run("progress", claimed.group(1), "50")
        run("complete", claimed.group(1), "success")


def measure(
    rounds: int, before: str | None
) -> tuple[list[Series], list[Series], list[SwarmRunner], str]:
    root = tempfile.mkdtemp(prefix="swarm-cli-bench-")
    # As installed for users: bytecode cached (this sandbox may set the variable, which
    # would recompile every swarmsh module in every process), no inherited config.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "SWARM_CONFIG", "SWARM_STORE")
        and not k.startswith(("TELEMETRY_", "OTEL_"))
    }
    env |= {"AGENT_ID": "agent_bench"}
    runners = [SwarmRunner("now", [SWARM], root, env)]
    if before:
        old_env = env | {"PYTHONPATH": os.path.abspath(before)}
        runners.append(
            SwarmRunner("before", [sys.executable, "-m", "orchestrator.cli"], root, old_env)
        )
    # Its own COORDINATION_DIR for each baseline: never the script's default path.
    baselines = [
        (
            Series("SwarmSH: coordination_helper.sh claim"),
            env | {"COORDINATION_DIR": os.path.join(root, "swarmsh")},
        )
    ]
    path = unshimmed_path(env, os.path.join(root, "bin"))
    if path:
        baselines.append(
            (
                Series("SwarmSH: claim, python3 without its shim"),
                env | {"COORDINATION_DIR": os.path.join(root, "swarmsh2"), "PATH": path},
            )
        )
    bare = Series("python -c pass")
    floor = Series("python: open the store, claim (no CLI, no span)")
    floor_cwd = os.path.join(root, "floor")
    os.makedirs(floor_cwd)
    floor_env = env | {"SWARM_STORE": os.path.join(floor_cwd, "agent_coordination")}
    try:
        for number in range(rounds + 2):
            record = number >= 2  # two warm-up rounds: bytecode, page cache
            for series, baseline_env in baselines:
                timed(
                    series if record else None,
                    ["bash", SWARMSH, "claim", "feature", "bench item", "high"],
                    root,
                    baseline_env,
                )
            for runner in runners:
                runner.round(record)
            timed(
                floor if record else None, [sys.executable, "-c", STORE_ONLY], floor_cwd, floor_env
            )
            timed(bare if record else None, [sys.executable, "-c", "pass"], root, env)
            if record:
                print(f"round {number - 1}/{rounds}", end="\r", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        python3 = shutil.which("python3", path=env.get("PATH")) or "?"
        return [series for series, _ in baselines], [floor, bare], runners, python3
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table(baselines: list[Series], python: list[Series], runners: list[SwarmRunner]) -> str:
    base = baselines[0].median()
    lines = [
        "| command (new process) | median ms | p90 ms | CPU ms (median) | vs SwarmSH claim |",
        "|---|---|---|---|---|",
    ]
    rows = [*baselines, *(s for r in runners for s in r.series.values()), *python]
    for series in rows:
        ratio = f"{series.median() / base:.2f}x"
        lines.append(
            f"| {series.label} | {series.median():.0f} | {series.p90():.0f} |"
            f" {series.cpu():.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="measured rounds")
    parser.add_argument("--before", help="source tree of an earlier swarmsh to compare")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    missing = missing_tools()
    if missing or not os.path.isfile(SWARMSH):
        problem = f"missing: {', '.join(missing)}" if missing else f"no script at {SWARMSH}"
        raise SystemExit(
            f"the SwarmSH baseline cannot run ({problem}). It needs "
            f"{', '.join(SWARMSH_NEEDS)}: apt-get install jq util-linux bc openssl python3;"
            " SWARMSH_SCRIPT=path/to/coordination_helper.sh if it is elsewhere."
        )
    load_before = os.getloadavg()[0]
    baselines, python, runners, python3 = measure(args.rounds, args.before)
    load_after = os.getloadavg()[0]
    text = table(baselines, python, runners)
    print(text)
    target = 0.5 * baselines[0].median()
    now = runners[0].series.values()
    verdict = ", ".join(
        f"{s.label.split(': ')[1]} {'met' if s.median() <= target else 'not met'}" for s in now
    )
    print(f"target <= 0.5x SwarmSH's claim ({target:.0f} ms): {verdict}")
    print(f"load average {load_before:.1f} -> {load_after:.1f}; SwarmSH's python3: {python3}")
    if args.write_results:
        command = invocation()
        write_section(
            "cli_bench",
            (
                "## Per-command latency: swarm vs SwarmSH's coordination_helper.sh\n\n"
                f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')},"
                f" {platform.machine()}, {os.cpu_count()} cores,"
                f" Python {platform.python_version()}; {args.rounds} rounds, load average"
                f" {load_before:.1f} -> {load_after:.1f}.\n"
                "Each round runs every row once, alternating, each a new process with"
                " telemetry on (one span per operation). SwarmSH's `claim` (its default fast"
                f" path) runs `date` 5 times, `openssl` 3 times and `python3` once (here"
                f" `{python3}`); ratios are against it as it runs here.\n\n"
                f"{text}\n\n"
                f"Target: ≤ 0.5x SwarmSH's claim ({target:.0f} ms here): {verdict}.\n"
                + (
                    f"`before` rows: the swarmsh source tree `{args.before}` run with the same"
                    " interpreter as `python -m orchestrator.cli`.\n"
                    if args.before
                    else ""
                )
            ),
        )


if __name__ == "__main__":
    main()
