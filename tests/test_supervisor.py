"""`swarm up` with real agent processes: restarts, kill -9, fatal groups, detach/down,
no orphans, and a load of 600 items done exactly once."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.records import WorkItem
from orchestrator.store import FULL_COLLECTION_EVERY
from orchestrator.store.file import FileStore

from .conftest import SWARM, still_running, wait_for

RECORD = 'echo "$SWARM_WORK_ITEM_ID $SWARM_AGENT_ID" >> "$LOG"'
# Two `sleep 300` that each write their pid to $PIDS before they become the sleep, so
# the test knows every sleeper its commands ever started.
SLEEPERS = "for n in 1 2; do sh -c 'echo $$ >> \"$PIDS\"; exec sleep 300' & done; wait"


def write_config(root: Path, groups: str, work: str, lease_s: float = 10) -> Path:
    # Commands see only the variables their group allows: LOG and PIDS (see _env).
    groups = groups.replace("[[agents]]\n", '[[agents]]\nenv = ["LOG", "PIDS"]\n')
    (root / "swarm.toml").write_text(f"[store]\nlease_s = {lease_s}\n\n{groups}\n{work}\n")
    return root / "swarm.toml"


def _env(root: Path) -> dict[str, str]:
    """The environment of the swarm a test starts; LOG, a path under the test's own
    folder, also marks every process of that swarm as the test's (see _sleepers)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    env["LOG"] = str(root / "executions.log")
    env["PIDS"] = str(root / "sleepers.pids")
    return env


def swarm(root: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWARM, *args], cwd=root, env=_env(root), capture_output=True, text=True, **kwargs
    )


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SWARM, "up", *args],
        cwd=root,
        env=_env(root),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def state(root: Path) -> dict[str, Any]:
    return json.loads((root / "real_agents" / "supervisor.json").read_text())


def executions(root: Path) -> Counter[str]:
    log = root / "executions.log"
    return (
        Counter(line.split()[0] for line in log.read_text().splitlines())
        if log.exists()
        else Counter()
    )


def results(root: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (root / "real_work_results").glob("*.json")}


@pytest.mark.slow
def test_12_agents_complete_600_items_exactly_once(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 12\n',
        f'[[work]]\nwork_type = "t"\ndescription = "item"\ncount = 600\n'
        f'payload = {{ argv = ["sh", "-c", {json.dumps(RECORD)}] }}\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=300)
    assert run.returncode == 0, run.stderr
    items = FileStore(tmp_path / "agent_coordination").list_work()
    assert len(items) == 600 and {i.status for i in items} == {"completed"}
    ran = executions(tmp_path)
    assert len(ran) == 600 and set(ran.values()) == {1}, "an item ran twice or never"
    files = results(tmp_path)
    assert set(files) == {i.work_item_id for i in items}
    assert all(r["status"] == "completed" and r["output"]["exit_code"] == 0 for r in files.values())
    per_agent = Counter(r["agent_id"] for r in files.values())
    assert len(per_agent) > 1
    final = state(tmp_path)
    assert final["status"] == "stopped" and final["groups"]["w"]["done"] == 600
    assert FileStore(tmp_path / "agent_coordination").list_agents() == []


def collector_thresholds(item: WorkItem) -> list[int]:
    """Run in an agent by the python backend: its garbage collector's thresholds."""
    return list(gc.get_threshold())


def test_agents_run_full_garbage_collections_a_tenth_as_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each full collection scans every object of the agent (store.long_lived_process).
    write_config(
        tmp_path,
        '[[agents]]\nname = "py"\nbackend = "python"\n'
        'function = "tests.test_supervisor:collector_thresholds"\n',
        '[[work]]\nwork_type = "t"\ndescription = "item"\n',
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))  # tests.*
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 0, run.stderr
    [item] = FileStore(tmp_path / "agent_coordination").list_work()
    young, middle, _ = gc.get_threshold()
    assert item.result == [young, middle, FULL_COLLECTION_EVERY]


@pytest.mark.slow
def test_kill_9_of_an_agent_mid_item_restarts_it_and_the_item_completes_once(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\n',
        f'[[work]]\nwork_type = "t"\ndescription = "slow item"\ncount = 4\n'
        f'payload = {{ argv = ["sh", "-c", {json.dumps(RECORD + "; sleep 1")}] }}\n',
        lease_s=60,
    )
    proc = start(tmp_path, "--until-drained")
    store = FileStore(tmp_path / "agent_coordination")
    held = wait_for(lambda: [i for i in store.list_work() if i.held and executions(tmp_path)])
    victim_id = held[0].agent_id
    victim = next(a for a in state(tmp_path)["agents"] if a["agent_id"] == victim_id)
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(
        lambda: next(
            a
            for a in state(tmp_path)["agents"]
            if a["name"] == victim["name"] and a["pid"] != victim["pid"] and a["state"] == "running"
        ),
        timeout=5,
    )
    restart_s = time.monotonic() - killed_at
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert restart_s < 2.0, f"restart took {restart_s:.2f}s"
    items = store.list_work()
    assert len(items) == 4 and {i.status for i in items} == {"completed"}
    assert set(results(tmp_path)) == {i.work_item_id for i in items}
    # The killed agent's item came back at once (not at lease end), with an attempt counted.
    assert sorted(i.attempts for i in items) == [0, 0, 0, 1]
    assert all(r["agent_id"] != victim_id for r in results(tmp_path).values())


@pytest.mark.slow
def test_a_crashing_group_backs_off_then_turns_fatal_others_unaffected(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "broken"\nbackend = "python"\nfunction = "no_such_module:run"\n'
        "max_restarts = 3\nbackoff_initial_s = 0.1\n\n"
        '[[agents]]\nname = "good"\ncount = 2\nwork_types = ["ok"]\n',
        '[[work]]\nwork_type = "ok"\ndescription = "fine"\ncount = 10\n'
        'payload = { argv = ["sleep", "0.5"] }\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 1, run.stderr  # a fatal group makes the exit code 1
    delays = [
        float(d)
        for d in re.findall(r"broken-1 exited with 3; restart \d+ in ([\d.]+)s", run.stderr)
    ]
    assert len(delays) == 3 and delays == sorted(delays), run.stderr
    assert delays[-1] >= 0.2  # 0.1 * 2**2 * jitter(0.5..1)
    assert "fatal" in run.stderr
    final = state(tmp_path)
    assert final["groups"]["broken"]["state"] == "fatal"
    assert final["groups"]["broken"]["restarts"] == 3
    assert final["groups"]["good"]["done"] == 10


def _sleepers(root: Path) -> list[psutil.Process]:
    """The SLEEPERS of the swarm started in ``root`` that still run: every one of them
    wrote its pid to $PIDS, so one started at any time is found, and only those."""
    env = _env(root)
    try:
        pids = [int(pid) for pid in Path(env["PIDS"]).read_text().split()]
    except FileNotFoundError:
        return []
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        if still_running(pid, ("LOG", env["LOG"])):
            found.append(proc)
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("force", [False, True], ids=["warm", "cold"])
def test_detach_status_down_stop_everything_and_leave_no_orphan(
    tmp_path: Path, force: bool
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 3\nstop_timeout_s = 1\n',
        '[[work]]\nwork_type = "t"\ndescription = "long"\ncount = 3\n'
        f"payload = {{ argv = {json.dumps(['sh', '-c', SLEEPERS])} }}\n",
    )
    up = swarm(tmp_path, "up", "--detach", timeout=60)
    assert up.returncode == 0, up.stderr
    assert "running in the background" in up.stdout
    status = json.loads(swarm(tmp_path, "status", "--json").stdout)
    assert status["alive"] and len(status["agents"]) == 3
    supervisor = psutil.Process(status["pid"])
    agents = [psutil.Process(a["pid"]) for a in status["agents"]]

    def all_six() -> list[psutil.Process] | None:  # two per agent
        found = _sleepers(tmp_path)
        return found if len(found) >= 6 else None

    sleepers = wait_for(all_six)
    assert "running" in swarm(tmp_path, "status").stdout
    down = swarm(tmp_path, "down", *(["--force"] if force else []), timeout=60)
    assert down.returncode == 0, down.stderr
    for proc in [supervisor, *agents, *sleepers]:
        assert not _alive(proc), proc
    assert _sleepers(tmp_path) == []  # nor one started after the count above
    store = FileStore(tmp_path / "agent_coordination")
    assert store.list_agents() == []
    # Released, not lost: by the agents (warm) or by the supervisor for killed agents (cold).
    assert {i.status for i in store.list_work()} == {"pending"}
    assert swarm(tmp_path, "status").returncode == 6
    assert swarm(tmp_path, "down").returncode == 6


@pytest.mark.slow
def test_commands_of_a_killed_agent_do_not_survive_it(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\nstop_timeout_s = 1\n',
        '[[work]]\nwork_type = "t"\ndescription = "long"\ncount = 2\n'
        f"payload = {{ argv = {json.dumps(['sh', '-c', SLEEPERS])} }}\n",
    )
    assert swarm(tmp_path, "up", "--detach", timeout=60).returncode == 0
    try:
        wait_for(lambda: len(_sleepers(tmp_path)) >= 4)
        victim = state(tmp_path)["agents"][0]
        theirs = [
            p
            for p in _sleepers(tmp_path)
            if p.environ().get("SWARM_AGENT_ID") == victim["agent_id"]
        ]
        assert len(theirs) == 2
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: not any(_alive(p) for p in theirs), timeout=10)
        assert len(_sleepers(tmp_path)) >= 2  # the other agent's command, or the retried one
    finally:
        swarm(tmp_path, "down", "--force", timeout=60)
    assert _sleepers(tmp_path) == []


@pytest.mark.slow
def test_agents_leave_cleanly_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    write_config(tmp_path, '[[agents]]\nname = "w"\ncount = 3\n', "")
    assert swarm(tmp_path, "up", "--detach", timeout=60).returncode == 0
    store = FileStore(tmp_path / "agent_coordination")
    wait_for(lambda: len(store.list_agents()) == 3)
    agents = [psutil.Process(a["pid"]) for a in state(tmp_path)["agents"]]
    os.kill(state(tmp_path)["pid"], signal.SIGKILL)
    wait_for(lambda: not any(_alive(p) for p in agents), timeout=15)
    assert store.list_agents() == []  # they deregistered on their way out


@pytest.mark.slow
def test_an_idle_swarm_uses_almost_no_cpu_and_one_supervisor_per_store(tmp_path: Path) -> None:
    write_config(tmp_path, '[[agents]]\nname = "w"\ncount = 4\n', "")
    assert swarm(tmp_path, "up", "--detach", timeout=60).returncode == 0
    try:
        second = swarm(tmp_path, "up", timeout=60)
        assert second.returncode == 3 and "another supervisor" in second.stderr
        assert second.stderr.count("\n") == 1
        supervisor = psutil.Process(state(tmp_path)["pid"])
        store = FileStore(tmp_path / "agent_coordination")
        wait_for(lambda: len(store.list_agents()) == 4)  # started up, and idle from now on
        store.close()

        def cpu_seconds() -> dict[int, float]:
            used: dict[int, float] = {}
            for proc in [supervisor, *supervisor.children(recursive=True)]:
                try:
                    used[proc.pid] = sum(proc.cpu_times()[:4])
                except psutil.NoSuchProcess:
                    continue
            return used

        # The agents' idle pauses grow to their longest a little after they register:
        # measure 3 s windows of the swarm's CPU time until one is idle (6 % of a core),
        # rather than guess when that is. A swarm that keeps busy fails at the deadline.
        windows: list[float] = []

        def idle_window() -> bool:
            before, started = cpu_seconds(), time.monotonic()
            time.sleep(3)  # the measured window
            after, elapsed = cpu_seconds(), time.monotonic() - started
            used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
            windows.append(round(used / elapsed, 3))
            return used < 0.06 * elapsed

        try:
            wait_for(idle_window, timeout=60)
        except AssertionError:
            raise AssertionError(f"idle swarm, CPU share of each 3 s window: {windows}") from None
    finally:
        swarm(tmp_path, "down", timeout=60)


def test_up_refuses_bad_config_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[[agents]]\nname = "w"\nrestart = "sometimes"\n')
    run = swarm(tmp_path, "up", timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().endswith("(got 'sometimes')") and run.stderr.count("\n") == 1
    (tmp_path / "swarm.toml").unlink()
    missing = swarm(tmp_path, "up", timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize(
    ("setting", "hint"),
    [("http_port", "0 to turn it off"), ("metrics_port", "0 to turn /metrics off")],
)
def test_a_listening_port_in_use_stops_up_in_one_line(
    tmp_path: Path, setting: str, hint: str
) -> None:
    """Either server of `swarm up` (the HTTP API, /metrics) on a busy port: one line
    naming the setting, exit 3, before anything is enqueued."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(
            tmp_path,
            '[[agents]]\nname = "a"\ncount = 1\n',
            '[[work]]\nwork_type = "w"\ndescription = "d"\ncount = 3\n',
        )
        config.write_text(config.read_text() + f"\n[supervisor]\n{setting} = {port}\n")
        proc = swarm(tmp_path, "up", timeout=60)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"swarm: error: [supervisor] {setting} = {port}: cannot listen on 127.0.0.1:{port}"
        f" (Address already in use); choose a free port, or {hint}"
    ]
    store = FileStore(tmp_path / "agent_coordination")
    try:
        assert store.list_work() == []  # stopped before anything was enqueued
    finally:
        store.close()


@pytest.mark.slow
def test_llm_agents_end_to_end_with_tokens_in_result_files_and_no_key_leak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .fake_llm import FakeLLM, claude_ok, ollama_ok

    key = "sk-ant-e2e-secret-key-9876543210"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with FakeLLM() as ollama, FakeLLM() as claude:
        ollama.replies.extend([ollama_ok(f"answer {n}") for n in range(3)])
        claude.replies.extend([claude_ok(f"answer {n}") for n in range(2)])
        write_config(
            tmp_path,
            f'[[agents]]\nname = "local"\nbackend = "ollama"\nhost = "{ollama.url}"\n'
            'work_types = ["ask_ollama"]\n\n'
            f'[[agents]]\nname = "cloud"\nbackend = "claude"\nhost = "{claude.url}"\n'
            'model = "claude-test"\nwork_types = ["ask_claude"]\n',
            '[[work]]\nwork_type = "ask_ollama"\ndescription = "q"\ncount = 3\n\n'
            '[[work]]\nwork_type = "ask_claude"\ndescription = "q"\ncount = 2\n',
        )
        run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 0, run.stderr
    records = list(results(tmp_path).values())
    assert len(records) == 5 and {r["status"] for r in records} == {"completed"}
    by_backend = Counter(r["backend"] for r in records)
    assert by_backend == {"ollama": 3, "claude": 2}
    for r in records:
        assert r["output"].startswith("answer ")
        if r["backend"] == "ollama":
            assert (r["model"], r["tokens"]) == ("qwen3", {"input": 21, "output": 7})
        else:
            assert (r["model"], r["tokens"]) == ("claude-test", {"input": 33, "output": 9})
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.slow
def test_the_shipped_demo_swarm_runs_offline(tmp_path: Path) -> None:
    import shutil

    repo = Path(__file__).resolve().parent.parent
    for name in ("orchestrator", "agents", "tests", "bench"):
        shutil.copytree(repo / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("swarm.toml", "README.md", "CHANGELOG.md"):
        shutil.copy(repo / name, tmp_path / name)
    run = swarm(tmp_path, "demo", timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Summary" in run.stdout and "0 unfinished" in run.stdout
    records = list(results(tmp_path).values())
    statuses = Counter(r["status"] for r in records)
    assert statuses["dead"] == 0 and statuses["completed"] >= 40
    flaky = [r for r in records if r["work_type"] == "flaky"]
    assert len(flaky) == 3 and all(r["status"] == "completed" and r["attempts"] == 1 for r in flaky)


@pytest.fixture
def process_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what a supervisor run in this process sets for it (long_lived_process)."""
    from orchestrator.store import locking

    monkeypatch.setattr(locking, "_patient", locking._patient)
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)


@pytest.mark.slow
@pytest.mark.usefixtures("process_settings")
def test_a_supervisor_that_crashes_takes_its_agents_down(tmp_path: Path) -> None:
    from orchestrator.config import load_config
    from orchestrator.supervisor import Supervisor

    write_config(tmp_path, '[[agents]]\nname = "w"\ncount = 2\nstop_timeout_s = 1\n', "")
    ticks: list[int] = []
    pids: list[int] = []

    def crash(supervisor: Supervisor) -> None:
        ticks.append(1)
        if len(ticks) == 5:
            pids.extend(s.pid for s in supervisor.slots.values() if s.pid)
            raise RuntimeError("bug in the supervisor")

    supervisor = Supervisor(load_config(tmp_path / "swarm.toml"), on_tick=crash)
    with pytest.raises(RuntimeError, match="bug in the supervisor"):
        supervisor.run()
    assert len(pids) == 2
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert state(tmp_path)["status"] == "stopped"


@pytest.mark.slow
def test_up_twice_enqueues_each_work_item_once(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    for name in ("a.txt", "b.txt"):
        (tmp_path / "inputs" / name).write_text(name)
    payload = f'payload = {{ argv = ["sh", "-c", {json.dumps(RECORD)}] }}\n'
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\n',
        f'[[work]]\nwork_type = "t"\ndescription = "same"\ncount = 3\n{payload}\n'
        f'[[work]]\nwork_type = "t"\ndescription = "read {{file}}"\nforeach = "inputs/*.txt"\n'
        f'key = "read"\n{payload}',
    )
    first = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert first.returncode == 0, first.stderr
    assert re.search(r"^enqueued 5 work item\(s\) from \S+, 0 already present$", first.stdout, re.M)
    second = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert second.returncode == 0, second.stderr
    assert re.search(
        r"^enqueued 0 work item\(s\) from \S+, 5 already present$", second.stdout, re.M
    )
    items = FileStore(tmp_path / "agent_coordination").list_work()
    assert len(items) == 5 and {i.status for i in items} == {"completed"}
    keys = sorted(i.key or "" for i in items)
    assert keys[:2] == ["read:inputs/a.txt", "read:inputs/b.txt"]
    assert re.fullmatch(r"t:[0-9a-f]{16}", keys[2]) and keys[3:] == [f"{keys[2]}#2", f"{keys[2]}#3"]
    ran = executions(tmp_path)
    assert len(ran) == 5 and set(ran.values()) == {1}, "an item ran twice or never"


@pytest.mark.slow
def test_up_no_enqueue_leaves_the_work_tables_out(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 1\n',
        '[[work]]\nwork_type = "t"\ndescription = "from swarm.toml"\ncount = 2\n'
        f'payload = {{ argv = ["sh", "-c", {json.dumps(RECORD)}] }}\n',
    )
    by_hand = swarm(
        tmp_path, "add", "t", "by hand", "--payload", json.dumps({"argv": ["sh", "-c", RECORD]})
    )
    assert by_hand.returncode == 0, by_hand.stderr
    run = swarm(tmp_path, "up", "--until-drained", "--no-enqueue", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "enqueued" not in run.stdout
    items = FileStore(tmp_path / "agent_coordination").list_work()
    assert [(i.description, i.status) for i in items] == [("by hand", "completed")]
    assert list(executions(tmp_path).values()) == [1]


def test_an_exited_agent_not_yet_reaped_keeps_its_last_sample() -> None:
    # Between its exit and the supervisor's reaping, an agent is a zombie, which psutil
    # reads as using no memory: its record must keep the last sample taken alive.
    from orchestrator.config import AgentGroup
    from orchestrator.reporting import agent_record
    from orchestrator.slots import Slot, SlotState

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        slot = Slot(AgentGroup(name="g"), 1, state=SlotState.RUNNING, agent_id="agent_1")
        slot.process, slot.pid, slot.ps = child, child.pid, psutil.Process(child.pid)
        alive = agent_record(slot, "host", 0.0)
        assert alive["rss_bytes"] and alive["threads"]
        os.kill(child.pid, signal.SIGKILL)
        ps = slot.ps
        wait_for(lambda: ps.status() == psutil.STATUS_ZOMBIE)
        exited = agent_record(slot, "host", 1.0)
        assert exited["rss_bytes"] == alive["rss_bytes"], exited
    finally:
        child.kill()
        child.wait()
