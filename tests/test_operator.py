"""Operating a running swarm from the real CLI: the live view on a terminal, the log
lines without one, stop/start/restart of a group, per-agent logs, fail-fast checks
and the exit code of a run that left dead or unclaimable work."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.store.file import FileStore

from .conftest import SWARM
from .test_supervisor import state, swarm, wait_for, write_config

SLEEPY = (
    '[[work]]\nwork_type = "t"\ndescription = "nap {n}"\ncount = 6\n'
    'payload = { argv = ["sleep", "300"] }\n'
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    env.update(extra)
    return env


def _store_items(root: Path) -> list[Any]:
    store = FileStore(root / "agent_coordination")
    try:
        return store.list_work()
    finally:
        store.close()


class Terminal:
    """`swarm …` on a real pseudo-terminal; everything it draws is kept in ``screen``."""

    def __init__(self, root: Path, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the command
            os.chdir(root)
            os.execve(SWARM, ["swarm", *args], _env(COLUMNS="160", LINES="60"))
        self.screen = ""

    def read(self) -> str:
        poller = select.poll()  # not select(): the fd may be above FD_SETSIZE in a long run
        poller.register(self.fd, select.POLLIN)
        while poller.poll(50):
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.screen += chunk.decode(errors="replace")
        return self.screen

    def wait_for_text(self, *texts: str, timeout: float = 60.0) -> None:
        wait_for(lambda: all(t in self.read() for t in texts), timeout=timeout)

    def wait_exit(self, timeout: float = 60.0) -> int:
        def done() -> int | None:
            self.read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            return os.waitstatus_to_exitcode(status) + 1000 if pid else None

        return int(wait_for(done, timeout=timeout)) - 1000


def test_up_on_a_terminal_shows_groups_agents_and_items_and_says_what_ctrl_c_waits_for(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, '[[agents]]\nname = "nappers"\ncount = 2\nstop_timeout_s = 1\n', SLEEPY)
    term = Terminal(tmp_path, "up")
    try:
        # Groups, agents by name, the item each one works on, and the queue.
        term.wait_for_text("groups", "nappers-1", "nappers-2", "nap ", "queue", "pending")
        wait_for(lambda: all(a["current"] for a in state(tmp_path)["agents"]))
        # ps and top show which agent runs which item.
        for row in state(tmp_path)["agents"]:
            want = f"swarm agent {row['name']} {row['current']}"
            wait_for(
                lambda r=row, w=want: (
                    " ".join(filter(None, psutil.Process(r["pid"]).cmdline())) == w
                )
            )
        os.kill(term.pid, signal.SIGINT)
        term.wait_for_text("stopping: waiting up to 1 s for 2 agent(s), 2 item(s) in progress")
        assert "Ctrl-C again" in term.screen
        assert term.wait_exit() == 0
    finally:
        _stop(term.pid)
        os.close(term.fd)


def test_the_live_view_shows_limits_and_budgets_when_swarm_toml_sets_them(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "nappers"\ncount = 1\nstop_timeout_s = 1\n',
        SLEEPY + '[[limits]]\nname = "provider-x"\nbackend = "claude"\nrequests_per_minute = 50\n'
        "[budget]\nmax_usd = 2.5\n",
    )
    term = Terminal(tmp_path, "up")
    try:
        term.wait_for_text("limits and budgets", "limit provider-x: requests 0/50 used")
        term.wait_for_text("$0.0000 spent of $2.5")
        os.kill(term.pid, signal.SIGINT)
        assert term.wait_exit() == 0
    finally:
        _stop(term.pid)
        os.close(term.fd)


def _stop(pid: int) -> None:
    """A supervisor the test started, stopped as an operator would: warm, then cold."""
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        try:
            os.kill(pid, signum)
            wait_for(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, timeout=30)
            return
        except (ProcessLookupError, ChildProcessError):
            return
        except AssertionError:
            continue


def test_without_a_terminal_the_log_tells_the_story_and_dead_items_fail_the_run(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 1\n',
        '[[work]]\nwork_type = "t"\ndescription = "ok"\npayload = { argv = ["true"] }\n'
        '[[work]]\nwork_type = "t"\ndescription = "bad"\n'
        'payload = { argv = ["sh", "-c", "echo disk on fire >&2; exit 3"] }\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 1, run.stderr
    for line in ("started w-1", "failed, will be retried", "is dead", "drained"):
        assert line in run.stderr, line
    assert "disk on fire" in run.stderr
    assert "1 item(s) ended dead; top errors:" in run.stdout
    assert "1  exit code 3: disk on fire" in run.stdout
    assert run.stderr.strip().splitlines()[-1] == "swarm: error: 1 item(s) ended dead"


def test_until_drained_ends_when_only_unclaimable_work_is_left(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 1\nwork_types = ["t"]\n',
        '[[work]]\nwork_type = "t"\ndescription = "ok"\npayload = { argv = ["true"] }\n'
        '[[work]]\nwork_type = "feature"\ndescription = "nobody does this"\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 1
    assert "no agent group can claim these pending work types: feature (1)" in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("swarm: error: work no agent group can claim") and "feature (1)" in last
    statuses = sorted(i.status for i in _store_items(tmp_path))
    assert statuses == ["completed", "pending"]


def test_a_claude_group_without_a_key_fails_before_any_claim(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "writers"\nbackend = "claude"\n',
        '[[work]]\nwork_type = "t"\ndescription = "write"\n',
    )
    env = _env()
    env.pop("ANTHROPIC_API_KEY", None)
    run = subprocess.run(
        [SWARM, "up", "--until-drained"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "ANTHROPIC_API_KEY is not set" in run.stderr
    assert not (tmp_path / "agent_coordination" / "journal.jsonl").exists() or all(
        i.status == "pending" for i in _store_items(tmp_path)
    )


def test_an_ollama_group_whose_server_does_not_answer_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_config(
        tmp_path,
        f'[[agents]]\nname = "thinkers"\nbackend = "ollama"\nhost = "http://127.0.0.1:{port}"\n',
        '[[work]]\nwork_type = "t"\ndescription = "think"\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=60)
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert f"the Ollama server at http://127.0.0.1:{port} does not answer" in run.stderr


def _pids(root: Path, group: str) -> list[int]:
    return [a["pid"] for a in state(root)["agents"] if a["group"] == group and a["pid"]]


@pytest.mark.slow
def test_stop_start_restart_a_group_of_a_detached_swarm_and_read_its_logs(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\nstop_timeout_s = 1\n\n'
        '[[agents]]\nname = "v"\ncount = 1\nstop_timeout_s = 1\n',
        SLEEPY,
    )
    up = swarm(tmp_path, "up", "--detach", timeout=60)
    assert up.returncode == 0, up.stderr
    try:
        wait_for(lambda: all(a["current"] for a in state(tmp_path)["agents"]))
        w_pids = _pids(tmp_path, "w")
        stop = swarm(tmp_path, "stop", "w", timeout=60)
        assert stop.returncode == 0 and "w: stopped (2 agent(s))" in stop.stdout, stop.stderr
        assert all(
            not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie" for p in w_pids
        )
        rows = {a["name"]: a for a in state(tmp_path)["agents"]}
        assert rows["w-1"]["state"] == rows["w-2"]["state"] == "stopped"
        assert rows["v-1"]["state"] == "running"
        assert state(tmp_path)["groups"]["w"]["state"] == "stopped"
        # A stopped group is not restarted by the policy; start brings it back.
        start = swarm(tmp_path, "start", "w", timeout=60)
        assert start.returncode == 0 and "w: running" in start.stdout, start.stderr
        assert set(_pids(tmp_path, "w")).isdisjoint(w_pids)
        v_pid = _pids(tmp_path, "v")
        assert swarm(tmp_path, "restart", "v", timeout=60).returncode == 0
        assert _pids(tmp_path, "v") != v_pid
        missing = swarm(tmp_path, "stop", "nope", timeout=60)
        assert missing.returncode == 6 and "no agent group 'nope'" in missing.stderr

        status = swarm(tmp_path, "status", timeout=60)
        for column in ("uptime", "cpu %", "rss MB", "done", "failed", "item"):
            assert column in status.stdout
        # Each agent has its own log: by group, by name, and followed as it grows.
        logs = swarm(tmp_path, "logs", "w", timeout=60)
        assert "w-1 | " in logs.stdout and "w-2 | " in logs.stdout and "claimed" in logs.stdout
        one = swarm(tmp_path, "logs", "w-1", "-n", "1", timeout=60)
        assert len(one.stdout.splitlines()) == 1
        follow = subprocess.Popen(
            [SWARM, "logs", "v", "-f", "-n", "0"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(follow.stdout or []), daemon=True)
        reader.start()
        try:
            assert swarm(tmp_path, "restart", "v", timeout=60).returncode == 0
            wait_for(lambda: any("claimed" in line for line in seen))
        finally:
            follow.terminate()
            follow.wait(10)
            reader.join(10)
            if follow.stdout is not None:
                follow.stdout.close()
    finally:
        down = swarm(tmp_path, "down", "--force", timeout=60)
        assert down.returncode == 0, down.stderr
    # An exited agent's record keeps its last sample instead of nulls.
    records = [json.loads(p.read_text()) for p in (tmp_path / "real_agents").glob("agent_*.json")]
    assert records and all(r["rss_bytes"] for r in records if r["state"] != "running")


def test_detach_reports_the_supervisors_own_error_and_code_once(tmp_path: Path) -> None:
    write_config(tmp_path, '[[agents]]\nname = "w"\ncount = 1\n', "")
    first = swarm(tmp_path, "up", "--detach", timeout=60)
    assert first.returncode == 0, first.stderr
    try:
        second = swarm(tmp_path, "up", "--detach", timeout=60)
        assert second.returncode == 3 and second.stderr.count("\n") == 1
        assert second.stderr.startswith("swarm: error: another supervisor")
        log = (tmp_path / "real_agents" / "supervisor.log").read_text()
        assert "another supervisor" not in log
    finally:
        assert swarm(tmp_path, "down", timeout=60).returncode == 0
    (tmp_path / "swarm.toml").write_text('[[agents]]\nname = "w"\nbackend = "claude"\n')
    env = _env()
    env.pop("ANTHROPIC_API_KEY", None)
    bad = subprocess.run(
        [SWARM, "up", "--detach"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("swarm: error:") == 1
    assert "ANTHROPIC_API_KEY is not set" in bad.stderr


def test_a_drained_run_stops_without_restarting_agents_of_an_always_group(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 2\nrestart = "always"\n',
        '[[work]]\nwork_type = "t"\ndescription = "ok"\npayload = { argv = ["true"] }\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "drained" in run.stderr and "; restart " not in run.stderr
    assert all(a["restarts"] == 0 for a in state(tmp_path)["agents"])


def test_until_drained_ends_with_exit_1_when_no_agent_is_left_for_pending_work(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "w"\ncount = 1\nrestart = "never"\nbackend = "python"\n'
        'function = "no_such_module:run"\n',
        '[[work]]\nwork_type = "t"\ndescription = "never run"\n',
    )
    run = swarm(tmp_path, "up", "--until-drained", timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "swarm: error: no agent left to run the 1 item(s) still to do"
    )
