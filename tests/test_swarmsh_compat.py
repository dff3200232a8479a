"""SwarmSH drop-in: `swarm` driven the way SwarmSH's users script `coordination_helper.sh`.

Every command goes through a one-line `coordination_helper.sh` shim
(`SWARM_STORE="$COORDINATION_DIR" exec swarm "$@"`), as a user replacing SwarmSH would
write it, and each step is read back with `jq` from the JSON files SwarmSH's scripts
read, right after the command returns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import SWARM

JQ = shutil.which("jq")


class Helper:
    """The shim and jq, in one scratch folder with its own COORDINATION_DIR."""

    def __init__(self, root: Path) -> None:
        assert JQ is not None, "these tests need jq (make test installs it)"
        self.root = root
        self.dir = root / "agent_coordination"
        self.shim = root / "coordination_helper.sh"
        self.shim.write_text('#!/bin/sh\nSWARM_STORE="$COORDINATION_DIR" exec swarm "$@"\n')
        self.shim.chmod(0o755)
        drop = ("AGENT_ID", "SWARM_CONFIG", "SWARM_STORE", "COORDINATION_MODE", "AGENT_ROLE")
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env["PATH"] = f"{Path(SWARM).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["COORDINATION_DIR"] = str(self.dir)

    def run(
        self, *args: str, agent: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        extra = env | ({"AGENT_ID": agent} if agent else {})
        return subprocess.run(
            [str(self.shim), *args],
            cwd=self.root,
            env=self.env | extra,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str, agent: str | None = None, **env: str) -> str:
        done = self.run(*args, agent=agent, **env)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def jq(self, query: str, file: str, *args: str) -> Any:
        """jq's answer (-c), parsed: what a script would get."""
        done = subprocess.run(
            [JQ or "jq", "-c", *args, query, str(self.dir / file)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def helper(tmp_path: Path) -> Helper:
    return Helper(tmp_path)


def test_claim_progress_complete_each_read_back_with_jq(helper: Helper) -> None:
    agent = helper.ok("generate-id").strip()
    helper.ok("register", "100", "active", "backend_development", "--team", "core", agent=agent)
    assert helper.jq(".[] | {agent_id, status, team}", "agent_status.json") == [
        {"agent_id": agent, "status": "active", "team": "core"}
    ]
    assert helper.jq(".[].agent_id", "agents.json") == [agent]

    helper.ok("claim", "feature", "Implement caching layer", "high", "core", agent=agent)
    mine = helper.jq(".[] | select(.agent_id == $a)", "work_claims.json", "--arg", "a", agent)
    assert len(mine) == 1
    claim = mine[0]
    assert claim["status"] == "active" and claim["team"] == "core"
    assert (claim["work_type"], claim["priority"]) == ("feature", "high")
    work_id = claim["work_item_id"]
    # SwarmSH's time format: jq's fromdateiso8601 reads it (its TTL clean-up does).
    assert helper.jq(".[0].claimed_at | fromdateiso8601 | type", "work_claims.json") == ["number"]
    assert helper.jq(".[0].current_workload", "agent_status.json") == [1]

    helper.ok("progress", work_id, "50", "in_progress", agent=agent)
    assert helper.jq(
        ".[] | select(.work_item_id == $w) | [.status, .progress]",
        "work_claims.json",
        "--arg",
        "w",
        work_id,
    ) == [["in_progress", 50]]

    helper.ok("complete", work_id, "success", "8", agent=agent)
    done = helper.jq(".[] | select(.work_item_id == $w)", "work_claims.json", "--arg", "w", work_id)
    assert done[0]["status"] == "completed" and done[0]["result"] == "success"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", done[0]["completed_at"])
    log = helper.jq(
        ".[] | {work_item_id, agent_id, result, velocity_points}", "coordination_log.json"
    )
    assert log == [
        {"work_item_id": work_id, "agent_id": agent, "result": "success", "velocity_points": 8}
    ]
    assert helper.jq("map(.velocity_points) | add", "coordination_log.json") == [8]
    assert helper.jq(".[0].performance_metrics.tasks_completed", "agent_status.json") == [1]

    helper.ok("claim", "bug_fix", "Fix memory leak", "critical", agent=agent)
    second = helper.jq('.[] | select(.status == "active") | .work_item_id', "work_claims.json")
    assert len(second) == 1 and second[0] != work_id
    helper.ok("complete", second[0], "failed", agent=agent)
    assert helper.jq(
        ".[] | select(.work_item_id == $w) | [.status, .result]",
        "work_claims.json",
        "--arg",
        "w",
        second[0],
    ) == [["completed", "failed"]]


def test_claims_at_once_are_all_recorded(helper: Helper) -> None:
    """SwarmSH's claim could lose one of two claims made at the same moment; here each
    process's claim is in work_claims.json once every command has returned."""
    agents = [f"agent_{n}" for n in range(6)]
    procs = [
        subprocess.Popen(
            [str(helper.shim), "claim", "feature", f"task {n}", "medium", "core"],
            cwd=helper.root,
            env=helper.env | {"AGENT_ID": agent},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, agent in enumerate(agents)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    claims = helper.jq('.[] | select(.status == "active") | .agent_id', "work_claims.json")
    assert sorted(claims) == agents
    assert len(set(helper.jq(".[].work_item_id", "work_claims.json"))) == len(agents)


def test_generate_id_prints_swarmsh_agent_ids_and_work_ids_on_request(helper: Helper) -> None:
    first, second = helper.ok("generate-id").strip(), helper.ok("generate-id").strip()
    assert re.fullmatch(r"agent_\d{19}", first) and first != second
    assert re.fullmatch(r"work_\d{19}_[0-9a-f]{8}", helper.ok("generate-id", "--work").strip())


def test_dashboard_has_swarmsh_sections_above_our_own(helper: Helper) -> None:
    helper.ok("register", "agent_a", "core", "100", "backend")  # SwarmSH's script form
    helper.ok("register", "agent_b", "docs")
    helper.ok("claim", "feature", "Implement caching layer", "critical", "core", agent="agent_a")
    helper.ok("add", "research", "Spike", "low", "docs")
    for command in ("dashboard", "dashboard-fast"):
        out = helper.ok(command)
        lines = out.splitlines()
        assert lines[0].endswith("SCRUM AT SCALE DASHBOARD")
        assert "  📊 Active Agents: 2" in lines
        assert "  🤖 Agent agent_a: core team (backend)" in lines
        assert "    🤖 core: 1 agents" in lines and "    🤖 docs: 1 agents" in lines
        assert "  📊 Active Work Items: 1" in lines
        assert any(
            line.startswith("  🔧 work_") and "Implement caching layer" in line for line in lines
        )
        assert "  🔥 Critical Priority: 1" in lines
        assert "  📊 Current Sprint Velocity: 0 story points" in lines
        assert out.index("VELOCITY & METRICS") < out.index("swarm dashboard — store")


def test_coordination_dir_selects_the_store_unless_swarm_store_or_store_say_otherwise(
    helper: Helper,
) -> None:
    env = helper.env | {"AGENT_ID": "agent_x"}

    def swarm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SWARM, *args], cwd=helper.root, env=env | extra, capture_output=True, text=True
        )

    # Read before anything was written there: an empty queue, as SwarmSH shows (a
    # --store/SWARM_STORE holding nothing is taken for a typo instead: exit 6).
    first = swarm("list-work", "--json")
    assert (first.returncode, first.stdout.strip()) == (0, "[]"), first.stderr
    named = swarm("list-work", "--store", str(helper.dir))
    assert named.returncode == 6 and "no store at" in named.stderr
    assert swarm("claim", "feature", "via COORDINATION_DIR").returncode == 0
    assert helper.jq(".[].description", "work_claims.json") == ["via COORDINATION_DIR"]
    other = helper.root / "other"
    assert swarm("add", "t", "via SWARM_STORE", SWARM_STORE=str(other)).returncode == 0
    assert swarm("add", "t", "via --store", "--store", str(helper.root / "third")).returncode == 0
    assert helper.jq(".[].description", "work_claims.json") == ["via COORDINATION_DIR"]
    assert json.loads((other / "work_claims.json").read_text())[0]["description"] == (
        "via SWARM_STORE"
    )
    assert (helper.root / "third" / "work_claims.json").exists()
    # It overrides [store] of swarm.toml, as SWARM_STORE does.
    (helper.root / "swarm.toml").write_text('[store]\npath = "from_toml"\n')
    assert swarm("add", "t", "with a swarm.toml").returncode == 0
    assert not (helper.root / "from_toml").exists()
    assert helper.jq(".[].description", "work_claims.json")[-1] == "with a swarm.toml"
    url = swarm("list-work", COORDINATION_DIR="postgresql://x@127.0.0.1/db")
    assert url.returncode == 2 and "COORDINATION_DIR names a directory" in url.stderr


def test_coordination_mode_is_accepted_and_simple_is_said_to_lock(helper: Helper) -> None:
    helper.ok("add", "t", "something to list")  # the shim names the store: make it first
    assert helper.run("list-work", COORDINATION_MODE="atomic").stderr == ""
    simple = helper.run("list-work", COORDINATION_MODE="simple")
    assert simple.returncode == 0
    assert simple.stderr.count("COORDINATION_MODE=simple") == 1
    assert "always locks" in simple.stderr
    wrong = helper.run("list-work", COORDINATION_MODE="fast")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "swarm: error: COORDINATION_MODE='fast': use simple or atomic"
    ]


def test_swarmsh_commands_on_their_successful_path_exit_zero(helper: Helper) -> None:
    """What SwarmSH's help and scripts use, in their forms; every one exits 0."""
    agent = helper.ok("generate-id").strip()
    assert "claim" in helper.ok("help")
    helper.ok("register", agent, "core", "100", "backend_development")  # the script's form
    helper.ok("register", "100", "active", "backend_development", agent=agent)  # the README's
    helper.ok("claim", "feature", "one", agent=agent)  # priority and team left out
    helper.ok("claim-fast", "feature", "two", "high", "core", agent=agent)
    helper.ok("claim-slow", "feature", "three", "low", agent=agent)
    ids = helper.jq('.[] | select(.status == "active") | .work_item_id', "work_claims.json")
    assert len(ids) == 3
    helper.ok("progress", ids[0], "25", agent=agent)  # status defaults to in_progress
    helper.ok("progress", ids[0], "75", "in_progress", agent=agent)
    helper.ok("complete", ids[0], agent=agent)  # result defaults to success
    helper.ok("progress", ids[1], "100", "completed", agent=agent)
    helper.ok("complete", ids[2], "success", "13", agent=agent)
    for command in ("list-work", "list-work-fast", "dashboard", "dashboard-fast"):
        helper.ok(command)
    helper.ok("list-work", "core")
    helper.ok("agent-status")
    helper.ok("agent-status", agent)
    statuses = helper.jq("[.[] | .status] | unique", "work_claims.json")
    assert statuses == [["completed"]]
    assert helper.jq("map(.velocity_points) | add", "coordination_log.json") == [13]
    # The automation and Claude commands: with no model to ask (nothing listens at the
    # [intelligence] host here) each falls back to the plain behaviour and still exits 0.
    helper.ok("claim-intelligent", "feature", "four", "high", agent=agent)
    helper.ok("add", "feature", "five")
    helper.ok("claim-ai", agent=agent, OLLAMA_HOST="http://127.0.0.1:9")
    assert len(helper.jq('.[] | select(.status == "active")', "work_claims.json")) == 2
    helper.ok("optimize")
    for command, report in (
        ("claude-analyze-priorities", "claude_priority_analysis.json"),
        ("claude-optimize-assignments", "claude_optimization_results.json"),
        ("claude-health", "claude_health_analysis.json"),
        ("claude-team-analysis", "claude_team_analysis.json"),
    ):
        helper.ok(command, OLLAMA_HOST="http://127.0.0.1:9")
        assert (helper.root / report).exists(), command  # beside swarm.toml, else here


def test_a_swarm_of_agents_leaves_its_work_in_the_views(helper: Helper) -> None:
    """Agents and the supervisor write the views at intervals, and current as they stop."""
    (helper.root / "swarm.toml").write_text(
        '[[agents]]\nname = "w"\ncount = 2\n\n'
        '[[work]]\nwork_type = "echo"\ndescription = "say hi"\ncount = 5\n'
        'payload = { argv = ["true"] }\n'
    )
    run = subprocess.run(
        [SWARM, "up", "--until-drained"],
        cwd=helper.root,
        env=helper.env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    done = '[.[] | select(.status == "completed" and .result == "success")] | length'
    assert helper.jq(done, "work_claims.json") == [5]
    assert helper.jq("length", "coordination_log.json") == [5]
    assert helper.jq("length", "agent_status.json") == [0]  # every agent deregistered
