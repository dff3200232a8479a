"""Pipelines end to end: real `swarm` processes, real agents, the fake LLM server.

Parents' outputs reach their children, follow-ups appear exactly once even when the
planner is killed -9 between the model's answer and its completion, a cancelled item's
agent stops its command, and the shipped example runs."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import psutil
import pytest

from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore

from .conftest import SWARM, wait_for
from .fake_llm import FakeLLM, Reply, ollama_ok
from .test_supervisor import results, start, swarm, write_config

ROOT = Path(__file__).resolve().parent.parent


def by_key(store_dir: Path) -> dict[str, WorkItem]:
    with FileStore(store_dir) as store:
        return {i.key or i.work_item_id: i for i in store.list_work()}


def test_the_pipeline_example_runs_plan_five_steps_join(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "pipeline.toml", tmp_path / "pipeline.toml")
    run = subprocess.run(
        [SWARM, "-c", str(tmp_path / "pipeline.toml"), "demo"],
        env={k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
        | {"TMPDIR": str(tmp_path), "SWARM_NO_LIVE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    items = by_key(tmp_path / "run/pipeline/agent_coordination")
    assert {i.status for i in items.values()} == {"completed"}
    assert len(items) == 7
    plan = items["pipeline-plan"]
    steps = [items[f"pipeline-plan/part-{n}"] for n in range(1, 6)]
    join = items["pipeline-plan/join"]
    assert all(s.parents == [plan.work_item_id] for s in steps)
    assert join.parents == [plan.work_item_id, *(s.work_item_id for s in steps)]
    assert [s.attempts for s in steps] == [0, 0, 1, 0, 0]  # part 3 failed once
    assert all(join.claimed_at >= s.completed_at for s in steps)  # type: ignore[operator]
    records = results(tmp_path / "run/pipeline")
    joined = records[join.work_item_id]["output"]["stdout"]
    assert joined.startswith("joined:\n") and "part 3: recovered on the retry" in joined
    assert all(f"part {n}: " in joined for n in range(1, 6))
    assert sorted(records[plan.work_item_id]["children"]) == sorted(
        [join.work_item_id, *(s.work_item_id for s in steps)]
    )
    assert records[join.work_item_id]["parents"] == join.parents
    spans = [
        json.loads(line) for line in (tmp_path / "telemetry_spans.jsonl").read_text().splitlines()
    ]
    (invoked,) = [
        s
        for s in spans
        if s["name"].startswith("invoke_agent")
        and s["attributes"].get("swarm.work.id") == join.work_item_id
    ]
    assert invoked["attributes"]["swarm.work.parents"] == join.parents


PLAN = [
    {"description": "first half", "key": "a"},
    {"description": "second half", "key": "b"},
    {"description": "check both", "key": "c", "after": ["a", "b"]},
]


@pytest.mark.slow
def test_follow_ups_appear_once_when_the_planner_is_killed_before_completing(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    with FakeLLM() as planner_llm, FakeLLM() as worker_llm:
        planner_llm.replies.extend(
            [Reply(body=ollama_ok(json.dumps(PLAN)).body, gate=gate), ollama_ok(json.dumps(PLAN))]
        )
        worker_llm.replies.extend([ollama_ok(f"worked {n}") for n in range(4)])
        write_config(
            tmp_path,
            f'[[agents]]\nname = "planner"\nbackend = "ollama"\nhost = "{planner_llm.url}"\n'
            'plan = true\nplan_join = "review"\nwork_types = ["task"]\n\n'
            f'[[agents]]\nname = "worker"\nbackend = "ollama"\nhost = "{worker_llm.url}"\n'
            'work_types = ["subtask", "review"]\n',
            '[[work]]\nwork_type = "task"\ndescription = "build it"\nkey = "job"\n',
            lease_s=30,
        )
        proc = start(tmp_path, "--until-drained")
        try:
            store_dir = tmp_path / "agent_coordination"
            wait_for(lambda: planner_llm.requests, timeout=120)  # inside the call
            with FileStore(store_dir) as store:
                (held,) = [i for i in store.list_work() if i.held]
                (victim,) = [a.pid for a in store.list_agents() if a.agent_id == held.agent_id]
            # Hold the store lock: the planner cannot complete until it is released.
            with open(store_dir / ".lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                gate.set()
                wait_for(lambda: planner_llm.answered == 1)
                assert victim is not None
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: not psutil.pid_exists(victim) or _zombie(victim))
                fcntl.flock(lock, fcntl.LOCK_UN)
            _, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert len(planner_llm.requests) == 2  # asked again after the kill
    items = by_key(store_dir)
    job = items["job"]
    assert (job.status, job.attempts) == ("completed", 1)
    children = [i for i in items.values() if i.parents and job.work_item_id in i.parents]
    assert sorted(str(c.key) for c in children) == ["job/a", "job/b", "job/c"]
    (review,) = [i for i in items.values() if i.work_type == "review"]
    assert review.parents == [c.work_item_id for c in children]  # the join waits for all
    assert len(items) == 5 and {i.status for i in items.values()} == {"completed"}
    c = items["job/c"]
    assert c.parents == [job.work_item_id, items["job/a"].work_item_id, items["job/b"].work_item_id]
    # The workers' prompts carry their parents' outputs as context.
    prompts = [r["json"]["messages"][-1]["content"] for r in worker_llm.requests]
    assert all("Results of the work this task builds on" in p for p in prompts)
    assert any("worked" in p and "## job/a" in p for p in prompts)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_cancel_stops_the_held_command_and_cancels_what_waits_for_it(tmp_path: Path) -> None:
    pids = tmp_path / "sleeper.pid"
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 1\nwork_types = ["slow", "after"]\n',
        '[[work]]\nwork_type = "slow"\ndescription = "sleep"\nkey = "slow"\n'
        f'payload = {{ argv = ["sh", "-c", "echo $$ > {pids}; exec sleep 300"] }}\n\n'
        '[[work]]\nwork_type = "after"\ndescription = "after the sleep"\nkey = "next"\n'
        'after = ["slow"]\npayload = { argv = ["true"] }\n',
        lease_s=3,
    )
    proc = start(tmp_path)  # not --until-drained: its stop would end the command too
    logs = tmp_path / "real_agents"
    try:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), timeout=120)
        sleeper = int(pids.read_text())
        slow = by_key(tmp_path / "agent_coordination")["slow"]
        cancel = swarm(tmp_path, "cancel", slow.work_item_id, "--reason", "not needed")
        assert cancel.returncode == 0, cancel.stderr
        # The agent learns at its next heartbeat (every lease_s / 3) and kills the command.
        wait_for(lambda: not psutil.pid_exists(sleeper) or _zombie(sleeper), timeout=60)
        wait_for(lambda: "no longer held" in _read_logs(logs), timeout=60)
        assert proc.poll() is None and "stopped " + slow.work_item_id in _read_logs(logs)
    finally:
        swarm(tmp_path, "down", timeout=60)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    items = by_key(tmp_path / "agent_coordination")
    assert (items["slow"].status, items["slow"].error) == ("cancelled", "not needed")
    assert (items["next"].status, items["next"].error) == (
        "cancelled",
        f"parent {slow.work_item_id} is cancelled",
    )
    assert slow.work_item_id not in results(tmp_path)  # nothing recorded for it


def _read_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.rglob("*.log"))


def test_cli_add_after_cancel_retry_and_tree(tmp_path: Path, cli_env: dict[str, str]) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SWARM, *args], env=cli_env, capture_output=True, text=True)

    plan = cli("add", "plan", "make a plan", "--key", "plan", "-q").stdout.strip()
    step = cli("add", "step", "a step", "--key", "step", "--after", "plan", "-q").stdout.strip()
    join = cli("add", "join", "join", "--after", f"{plan},step", "-q").stdout.strip()
    unknown = cli("add", "x", "y", "--after", "nope")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "unknown parent work: nope" in unknown.stderr and "Traceback" not in unknown.stderr
    tree = cli("list-work", "--tree").stdout.splitlines()
    assert tree[0].startswith(f"{plan} [pending] plan")
    assert tree[1].startswith(f"└─ {step} [blocked] step") or tree[1].startswith(f"├─ {step}")
    assert any(join in line for line in tree)
    cancelled = cli("cancel", plan, "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    assert cli("cancel", plan).returncode == 3
    assert cli("cancel", "work_nope").returncode == 6
    shown = json.loads(cli("list-work", "--all", "--json").stdout)
    assert {i["work_item_id"]: i["status"] for i in shown} == {
        plan: "cancelled",
        step: "cancelled",
        join: "cancelled",
    }
    assert cli("retry", step).returncode == 3  # its parent is cancelled: retry that first
    assert cli("retry", plan).returncode == 0
    shown = json.loads(cli("list-work", "--json").stdout)
    assert {i["work_item_id"]: i["status"] for i in shown} == {
        plan: "pending",
        step: "blocked",
        join: "blocked",
    }
    diagram = cli("diagram", "work").stdout
    assert diagram.startswith("flowchart TD") and f"{plan} --> {step}" in diagram
