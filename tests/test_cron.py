"""`swarm cron` through the real crontab program: install and remove are idempotent and
leave every other line as it was; `swarm maintenance`/`optimize` from the command line.

The crontab edited is a throwaway user's (made here; root only, as CI runs), so the
crontab of whoever runs the tests is never touched. Without root the test edits the
caller's crontab and puts it back byte for byte.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import SWARM

FOREIGN = [
    "# the user's own lines",
    "MAILTO=ops@example.org",
    "*/10 * * * * /usr/local/bin/backup.sh >/dev/null 2>&1",
    "0 3 * * * swarm maintenance run optimize # swarmsh-maintenance:0123456789 optimize",
]


def _crontab(*args: str, user: str | None, text: str | None = None) -> Any:
    program = shutil.which("crontab")
    assert program, "the cron tests need the crontab program (make pytest installs cron)"
    argv = [program, *(["-u", user] if user else []), *args]
    return subprocess.run(argv, input=text, capture_output=True, text=True, check=False)


def _read(user: str | None) -> str:
    done = _crontab("-l", user=user)
    return done.stdout if done.returncode == 0 else ""


@pytest.fixture
def cron_user() -> Iterator[str | None]:
    if os.geteuid() == 0:
        user = f"swt{secrets.token_hex(4)}"
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", user], check=True)
        try:
            yield user
        finally:
            _crontab("-r", user=user)
            subprocess.run(["userdel", user], check=False)
    else:
        saved = _crontab("-l", user=None)
        try:
            yield None
        finally:
            if saved.returncode == 0:
                _crontab("-", user=None, text=saved.stdout)
            else:
                _crontab("-r", user=None)
        assert _read(None) == (saved.stdout if saved.returncode == 0 else "")


def _swarm(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWARM, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_install_is_idempotent_and_remove_takes_only_our_lines(
    tmp_path: Path, cron_user: str | None
) -> None:
    (tmp_path / "swarm.toml").write_text('[maintenance]\nhealth_every = "30m"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "SWARM_CONFIG")}
    if cron_user:
        env["SWARM_CRONTAB_USER"] = cron_user
    before = "\n".join(FOREIGN) + "\n"
    assert _crontab("-", user=cron_user, text=before).returncode == 0

    first = _swarm(tmp_path, env, "cron", "install", "--json")
    assert first.returncode == 0, first.stderr
    installed = json.loads(first.stdout)
    assert installed["changed"] and len(installed["lines"]) == 5
    after = _read(cron_user)
    assert after.startswith(before)  # the user's lines first, untouched
    ours = after[len(before) :].splitlines()
    assert ours == installed["lines"]
    by_task = {line.rsplit(" ", 1)[1]: line for line in ours}
    assert by_task["health"].startswith("*/15 * * * * ")  # half of 30m: the adaptive pace
    assert by_task["optimize"].startswith("0 3 * * * ")
    assert by_task["sweep"].startswith("*/5 * * * * ")
    assert "maintenance run health --if-due --trigger cron" in by_task["health"]

    again = _swarm(tmp_path, env, "cron", "install")
    assert again.returncode == 0 and "already installed" in again.stdout
    assert _read(cron_user) == after

    status = json.loads(_swarm(tmp_path, env, "cron", "status", "--json").stdout)
    assert status["up_to_date"] and status["installed"] == ours

    removed = _swarm(tmp_path, env, "cron", "remove", "--json")
    assert json.loads(removed.stdout)["removed"] == 5
    assert _read(cron_user) == before  # byte for byte, the other swarm's tag included
    assert json.loads(_swarm(tmp_path, env, "cron", "remove", "--json").stdout)["removed"] == 0


def test_a_cron_line_runs_its_task_once_per_period(tmp_path: Path, cron_user: str | None) -> None:
    """What a crontab line runs, run twice: the second finds the task not due."""
    (tmp_path / "swarm.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "SWARM_CONFIG")}
    if cron_user:
        env["SWARM_CRONTAB_USER"] = cron_user
    installed = json.loads(_swarm(tmp_path, env, "cron", "install", "--json").stdout)
    line = next(line for line in installed["lines"] if line.endswith(" health"))
    command = line.split(" ", 5)[5].rsplit(" #", 1)[0]
    for _ in range(2):
        subprocess.run(["sh", "-c", command], env=env, check=True, timeout=120)
    log = (tmp_path / "real_agents" / "maintenance-cron.log").read_text()
    assert log.count("ok    health") == 1 and "nothing due" in log
    rows = {
        r["task"]: r
        for r in json.loads(_swarm(tmp_path, env, "cron", "status", "--json").stdout)["tasks"]
    }
    assert rows["health"]["runs"] == 1 and rows["health"]["outcome"] == "ok"
    test = _swarm(tmp_path, env, "cron", "test", "--json")
    assert test.returncode == 0, test.stderr
    assert [o["task"] for o in json.loads(test.stdout)] == [
        "sweep",
        "health",
        "telemetry",
        "performance",
        "optimize",
    ]
    _swarm(tmp_path, env, "cron", "remove")


def test_maintenance_and_optimize_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "SWARM_CONFIG")}
    env["WORK_MAX_ACTIVE"] = "2"
    for n in range(3):
        assert _swarm(tmp_path, env, "add", "t", f"item {n}").returncode == 0
    optimize = _swarm(tmp_path, env, "optimize", "--json")
    assert optimize.returncode == 0, optimize.stderr
    data = json.loads(optimize.stdout)[0]
    assert data["data"]["active"] == 3 and "WORK_MAX_ACTIVE=2" in data["data"]["warnings"][0]
    report = json.loads((tmp_path / "work_optimization_report.json").read_text())
    assert report["active"] == 3

    status = json.loads(_swarm(tmp_path, env, "maintenance", "status", "--json").stdout)
    rows = {row["task"]: row for row in status}
    assert rows["optimize"]["runs"] == 1 and rows["health"]["runs"] == 0
    assert rows["optimize"]["next_due"] > rows["optimize"]["last_started"]

    bad = _swarm(tmp_path, env, "maintenance", "run", "defrag")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "use one of sweep, health" in bad.stderr
    spans = [
        json.loads(line)
        for line in Path(env["TELEMETRY_SPANS_FILE"]).read_text().splitlines()
        if '"swarmsh.maintenance.' in line
    ]
    assert [s["attributes"]["swarm.maintenance.outcome"] for s in spans] == ["ok"]


def test_cron_refuses_a_period_cron_cannot_express(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[maintenance]\ntelemetry_every = "7m"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "SWARM_CONFIG")}
    done = _swarm(tmp_path, env, "cron", "test")
    assert done.returncode == 2 and "telemetry" in done.stderr and "no cron form" in done.stderr


def test_bad_maintenance_settings_and_a_damaged_ledger(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "SWARM_CONFIG")}
    (tmp_path / "swarm.toml").write_text('[maintenance]\nhealth_every = "soon"\n')
    done = _swarm(tmp_path, env, "maintenance", "status")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "swarm.toml:2: [maintenance] health_every" in done.stderr
    (tmp_path / "swarm.toml").write_text("")
    bad_env = env | {"WORK_MAX_ACTIVE": "lots"}
    done = _swarm(tmp_path, bad_env, "optimize")
    assert done.returncode == 2 and "WORK_MAX_ACTIVE='lots': not a number" in done.stderr
    assert _swarm(tmp_path, env, "maintenance", "run", "sweep").returncode == 0
    ledger = tmp_path / "agent_coordination" / "maintenance.json"
    ledger.write_bytes(ledger.read_bytes()[:20])  # torn: the schedule starts afresh
    done = _swarm(tmp_path, env, "maintenance", "run", "health", "--json")
    assert done.returncode == 0, done.stderr
    assert "unreadable" in done.stderr and "starts afresh" in done.stderr
    rows = {
        r["task"]: r
        for r in json.loads(_swarm(tmp_path, env, "maintenance", "status", "--json").stdout)
    }
    assert rows["health"]["runs"] == 1 and rows["sweep"]["runs"] == 0
