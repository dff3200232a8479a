"""The typer-free way into SwarmSH's item commands (``orchestrator/cli/quick.py``):
it must never import typer, and must answer exactly as the typer command line does
for every form it takes, handing every other form to typer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import quick

IDS = re.compile(r"\b(work|agent)_\d+_[0-9a-f]{8}\b")
NUMBERS = re.compile(r"\d+\.\d+")
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]")

# Run one command line in a new interpreter, through the console script's main (quick
# first) or through the typer command line alone.
RUNNER = """
import sys
from orchestrator.cli import app, entry
args = sys.argv[2:]
if sys.argv[1] == "typer":
    try:
        code = app.run(args)
    except BaseException as exc:  # SwarmError etc.: entry's handling, without quick
        from orchestrator.errors import SwarmError
        if not isinstance(exc, SwarmError):
            raise
        entry.error_line(exc.message)
        code = exc.exit_code
else:
    code = entry.main(args)
sys.exit(code)
"""


def run(way: str, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, way, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def normal(text: str) -> str:
    return NUMBERS.sub("N", IDS.sub(r"\1_ID", TRACEPARENT.sub("TRACE", text)))


def fresh_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AGENT_"))}
    return env | {"TELEMETRY_SPANS_FILE": str(tmp / "spans.jsonl")} | extra


def test_the_plain_item_commands_never_import_typer(tmp_path: Path) -> None:
    script = """
import sys
from orchestrator.cli.entry import main
codes = [main(["claim", "feature", "x", "high", "-q"])]
codes.append(main(["add", "bug_fix", "y", "low", "core", "--key", "k"]))
codes.append(main(["claim", "--next", "--json"]))
print(codes, sorted(m for m in sys.modules if m.split(".")[0] in ("typer", "click", "rich")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=fresh_env(tmp_path, SWARM_STORE=str(tmp_path / "store")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 0] []"


@pytest.mark.parametrize(
    "argv",
    [
        ["claim", "feature", "Implement caching", "high"],
        ["claim", "feature", "x", "critical", "core", "--json"],
        ["--store", "{STORE}", "claim", "feature", "x", "-q"],
        ["claim", "feature", "x", "--store={STORE}", "--payload", '{"a": 1}', "--json"],
        ["claim", "feature", "x", "urgent"],
        ["claim", "feature"],
        ["claim"],
        ["claim", "--next", "-q"],
        ["claim", "--next", "--json", "--agent-id", "agent_quick"],
        ["add", "bug_fix", "Fix it", "low", "core"],
        ["add", "bug_fix", "Fix it", "--key", "held-key"],
        ["add", "bug_fix", "Fix it", "--key", "new-key", "--json"],
        ["add", "bug_fix", "Fix it", "--payload", "{not json"],
        ["progress", "{WORK}", "50"],
        ["progress", "{WORK}", "75", "blocked", "--json"],
        ["progress", "{WORK}", "101"],
        ["progress", "{WORK}", "10", "sideways"],
        ["progress", "work_1_deadbeef", "10"],
        ["progress", "{WORK}", "0", "pending"],
        ["progress", "{WORK}", "100", "completed"],
        ["complete", "{WORK}"],
        ["complete", "{WORK}", "failed", "8", "--result", "it broke"],
        ["complete", "{WORK}", "success", "--agent-id", "agent_other"],
        ["complete", "{WORK}", "exploded"],
        ["complete", "work_1_deadbeef"],
    ],
)
def test_quick_answers_as_the_typer_command_line_does(tmp_path: Path, argv: list[str]) -> None:
    """Each form on two stores prepared alike: the same exit code, the same stderr and
    the same stdout but for ids and timestamps."""
    answers = []
    for way in ("quick", "typer"):
        folder = tmp_path / way
        folder.mkdir()
        env = fresh_env(folder, SWARM_STORE=str(folder / "store"), AGENT_ID="agent_holder")
        code, held, err = run("typer", ["claim", "feature", "held", "-q"], folder, env)
        assert code == 0, err
        code, _, err = run("typer", ["add", "feature", "queued", "--key", "held-key"], folder, env)
        assert code == 0, err
        args = [
            a.replace("{WORK}", held.strip()).replace("{STORE}", str(folder / "store"))
            for a in argv
        ]
        code, out, err = run(way, args, folder, env)
        answers.append((code, normal(out), normal(err).replace(str(folder), "DIR")))
        if way == "quick":
            assert quick.parse(args) is not None, "a form quick.py is meant to take"
    assert answers[0] == answers[1]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["claim", "--help"],
        ["claim", "--next", "feature"],
        ["claim", "--next", "--type", "feature"],
        ["claim", "a", "b", "high", "team", "extra"],
        ["progress", "work_1_x", "-5"],
        ["progress", "work_1_x", "half"],
        ["complete", "work_1_x", "success", "eight"],
        ["add", "only-type"],
        ["add", "a", "b", "--key"],
        ["add", "a", "b", "--json=yes"],
        ["add", "--", "a", "b"],
        ["list-work"],
        ["--store", "x"],
        ["-c"],
    ],
)
def test_every_other_form_goes_to_typer(argv: list[str]) -> None:
    assert quick.parse(argv) is None


def test_a_quick_command_records_its_span(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, SWARM_STORE=str(tmp_path / "store"))
    code, out, err = run("quick", ["claim", "feature", "traced", "-q"], tmp_path, env)
    assert code == 0, err
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    claims = [s for s in spans if s["name"].endswith("claim_new")]
    assert len(claims) == 1
    assert out.strip() in json.dumps(claims[0])
