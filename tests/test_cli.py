"""The `swarm` command: every command, every exit code, JSON that parses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.cli import main

from .conftest import SWARM


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return orjson.loads(self.out)


@pytest.fixture
def swarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENT_ID", raising=False)
    monkeypatch.delenv("SWARM_CONFIG", raising=False)
    monkeypatch.setenv("SWARM_STORE", str(tmp_path / "store"))

    def run(*args: str, agent: str | None = None) -> Run:
        if agent:
            monkeypatch.setenv("AGENT_ID", agent)
        else:
            monkeypatch.delenv("AGENT_ID", raising=False)
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def _one_line_error(run: Run, code: int) -> None:
    assert run.code == code, (run.code, run.out, run.err)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swarm: error: "), run.err
    assert "Traceback" not in run.err


def test_swarmsh_tutorial_flow(swarm) -> None:  # type: ignore[no-untyped-def]
    reg = swarm("register", "100", "active", "backend_development", "--json", agent="agent_1")
    assert reg.code == 0 and reg.json()["agent_id"] == "agent_1"
    claimed = swarm(
        "claim", "feature", "Implement caching layer", "high", "--json", agent="agent_1"
    )
    work = claimed.json()
    assert (work["status"], work["agent_id"], work["priority"]) == ("claimed", "agent_1", "high")
    assert re.fullmatch(r"work_\d{19}_[0-9a-f]{8}", work["work_item_id"])
    work_id = work["work_item_id"]
    prog = swarm("progress", work_id, "50", "in_progress", "--json", agent="agent_1")
    assert prog.json()["progress"] == 50
    done = swarm("complete", work_id, "success", "8", "--json", agent="agent_1")
    assert (done.json()["status"], done.json()["story_points"]) == ("completed", 8)
    dash = swarm("dashboard", "--json").json()
    assert dash["work"] == {"completed": 1} and dash["velocity_points"] == 8
    assert swarm("dashboard").code == 0


def test_add_list_claim_next_release_fail(swarm) -> None:  # type: ignore[no-untyped-def]
    low = swarm("add", "research", "read papers", "low", "-q").out.strip()
    bug = swarm("add", "bug_fix", "fix leak", "critical", "core", "--payload", '{"n": 1}', "--json")
    bug_id = bug.json()["work_item_id"]
    assert bug.json()["payload"] == {"n": 1} and bug.json()["team"] == "core"
    listed = swarm("list-work", "--json").json()
    assert [i["work_item_id"] for i in listed] == [bug_id, low]
    assert [i["work_item_id"] for i in swarm("list-work", "critical", "--json").json()] == [bug_id]
    assert "fix leak" in swarm("list-work").out
    got = swarm("claim", "--next", "--team", "core", "--json", agent="a1").json()
    assert got["work_item_id"] == bug_id
    assert swarm("claim", "--next", "--type", "bug_fix", agent="a1").code == 6
    assert swarm("release", bug_id, "--json", agent="a1").json()["status"] == "pending"
    swarm("claim", "--next", agent="a2")
    failed = swarm("fail", bug_id, "could not reproduce", "--json", agent="a2").json()
    assert (failed["status"], failed["error"]) == ("failed", "could not reproduce")
    assert swarm("list-work", "failed", "--json").json()[0]["work_item_id"] == bug_id
    assert len(swarm("list-work", "--all", "--json").json()) == 2


def test_progress_statuses_pending_and_completed(swarm) -> None:  # type: ignore[no-untyped-def]
    work_id = swarm("claim", "feature", "x", "-q", agent="a1").out.strip()
    assert swarm("progress", work_id, "10", "pending", "--json").json()["status"] == "pending"
    swarm("claim", "--next", agent="a1")
    assert swarm("progress", work_id, "100", "completed", "--json").json()["status"] == "completed"


def test_agents_status_and_deregister(swarm) -> None:  # type: ignore[no-untyped-def]
    swarm("register", "80", "active", "frontend", "--team", "web", agent="a1")
    swarm("claim", "feature", "x", agent="a1")
    one = swarm("agent-status", "a1", "--json").json()
    assert one["team"] == "web" and len(one["holding"]) == 1 and one["host"]
    assert len(swarm("agent-status", "--json").json()) == 1
    assert "frontend" in swarm("agent-status").out
    assert swarm("deregister", "a1").code == 0
    _one_line_error(swarm("agent-status", "a1"), 6)
    _one_line_error(swarm("deregister", "a1"), 6)


def test_register_without_agent_id_generates_one(swarm) -> None:  # type: ignore[no-untyped-def]
    out = swarm("register", "50", "inactive", "docs", "--json").json()
    assert out["agent_id"].startswith("agent_") and out["status"] == "inactive"


def test_add_with_a_key_twice_adds_once(swarm) -> None:  # type: ignore[no-untyped-def]
    first = swarm("add", "build", "compile main", "--key", "build:main")
    assert first.code == 0 and first.out.startswith("Added work_")
    work_id = swarm("list-work", "--json").json()[0]["work_item_id"]
    again = swarm("add", "build", "compile main", "--key", "build:main")
    assert again.code == 0 and again.err == ""
    assert again.out == (
        f"key 'build:main' already present: {work_id} (build, pending); nothing added\n"
    )
    shown = swarm("add", "build", "other words", "high", "--key", "build:main", "--json")
    assert shown.code == 0 and shown.json()["work_item_id"] == work_id
    assert (shown.json()["key"], shown.json()["description"]) == ("build:main", "compile main")
    assert swarm("add", "build", "x", "--key", "build:main", "-q").out == f"{work_id}\n"
    listed = swarm("list-work", "--json").json()
    assert [(i["work_item_id"], i["key"]) for i in listed] == [(work_id, "build:main")]
    unkeyed = swarm("add", "build", "compile main", "--json").json()
    assert unkeyed["key"] is None and unkeyed["work_item_id"] != work_id
    _one_line_error(swarm("add", "build", "x", "--key", ""), 2)


def test_generate_id_and_compact(swarm) -> None:  # type: ignore[no-untyped-def]
    assert re.fullmatch(r"agent_\d{19}\n", swarm("generate-id").out)  # SwarmSH's form
    assert re.fullmatch(r"agent_\d{19}\n", swarm("generate-id", "--agent").out)
    assert re.fullmatch(r"work_\d+_[0-9a-f]{8}\n", swarm("generate-id", "--work").out)
    assert swarm("compact", "--json").json()["archived"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ("claim", "feature", "x", "urgent"),
        ("add", "feature", "x", "someday"),
        ("register", "101", "active", "x"),
        ("register", "many", "active", "x"),
        ("register", "10", "sleeping", "x"),
        ("claim",),
        ("claim", "--next", "feature"),
        ("add", "feature", "x", "--payload", "{oops"),
        ("progress", "work_1", "150"),
        ("progress", "work_1", "50", "dancing"),
        ("complete", "work_1", "great"),
        ("complete", "work_1", "success", "34"),
        ("nonsense",),
        ("list-work", "--limit", "many"),
        ("list-work", "--limit", "-1"),
        ("deregister", "../../etc/passwd"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(swarm, args: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(swarm(*args), 2)


def test_conflict_and_not_found_codes(swarm) -> None:  # type: ignore[no-untyped-def]
    work_id = swarm("claim", "feature", "x", "-q", agent="owner").out.strip()
    _one_line_error(swarm("complete", work_id, agent="thief"), 3)
    _one_line_error(swarm("progress", work_id, "10", agent="thief"), 3)
    swarm("complete", work_id, agent="owner")
    _one_line_error(swarm("complete", work_id, agent="owner"), 3)
    _one_line_error(swarm("complete", "work_404"), 6)
    _one_line_error(swarm("release", "work_404"), 6)
    _one_line_error(swarm("fail", "work_404", "why"), 6)
    empty = swarm("claim", "--next", "--json")
    assert empty.code == 6 and empty.json() is None


def test_permission_denied_is_exit_5(swarm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("orchestrator.store.file.os.makedirs", denied)
    _one_line_error(swarm("add", "feature", "x"), 5)


def test_config_errors_name_file_line_key_and_choices(swarm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "swarm.toml"
    config.write_text('[store]\npath = "s"\ndurability = "disk"\n')
    run = swarm("--config", str(config), "list-work")
    _one_line_error(run, 2)
    assert f"{config}:3: [store] durability: must be one of 'os', 'fsync'" in run.err
    config.write_text("[store]\nlease = 5\n")
    run = swarm("--config", str(config), "list-work")
    _one_line_error(run, 2)
    assert ":2: [store] lease: unknown key; allowed keys: backend, path," in run.err
    config.write_text('[store]\nlease_s = "soon"\n')
    assert "lease_s" in swarm("--config", str(config), "list-work").err
    config.write_text("[store\n")
    _one_line_error(swarm("--config", str(config), "list-work"), 2)
    config.write_text('colour = "blue"\n')
    assert "colour: unknown key" in swarm("--config", str(config), "list-work").err
    _one_line_error(swarm("--config", str(tmp_path / "missing.toml"), "list-work"), 2)


def test_store_path_comes_from_swarm_toml_in_cwd(
    swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SWARM_STORE")
    (tmp_path / "swarm.toml").write_text('[store]\npath = "from_toml"\nlease_s = 5\n')
    swarm("add", "feature", "x")
    assert (tmp_path / "from_toml" / "journal.jsonl").exists()


def run_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command in ``folder``, with no store or config chosen by the environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AGENT_ID", "SWARM_CONFIG", "SWARM_STORE", "LOG_LEVEL")
    }
    return subprocess.run(
        [SWARM, *args], cwd=folder, env=base | env, capture_output=True, text=True, timeout=60
    )


def test_swarm_toml_is_found_in_the_folders_above(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / "swarm.toml").write_text('[store]\npath = "queue"\n')
    added = run_in(deep, "add", "feature", "from below", "-q")
    assert added.returncode == 0, added.stderr
    assert (project / "queue" / "journal.jsonl").exists()  # next to swarm.toml, not in src/pkg
    assert not (deep / "agent_coordination").exists()
    listed = run_in(project / "src", "list-work", "--json")
    assert [i["work_item_id"] for i in orjson.loads(listed.stdout)] == [added.stdout.strip()]

    # Inside $HOME the search stops at $HOME: a swarm.toml above it is someone else's.
    home = project / "home"
    (home / "work").mkdir(parents=True)
    assert run_in(home / "work", "add", "feature", "x", HOME=str(home)).returncode == 0
    assert (home / "work" / "agent_coordination").is_dir()  # the default, here
    up = run_in(home / "work", "up", HOME=str(home))
    _one_line_error(Run(up.returncode, up.stdout, up.stderr), 2)
    assert f"swarm.toml: no such file in {home / 'work'} or the folders above" in up.stderr
    (home / "swarm.toml").write_text('[store]\npath = "mine"\n')
    run_in(home / "work", "add", "feature", "x", HOME=str(home))
    assert (home / "mine").is_dir()


def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = empty / "agent_coordination"
    note = f"no store at {where} (nothing has been enqueued here yet)\n"
    for command in ("list-work", "agent-status", "dashboard"):
        human = run_in(empty, command)
        assert (human.returncode, human.stdout, human.stderr) == (0, note, ""), command
        assert run_in(empty, command, "--json").returncode == 0
    assert orjson.loads(run_in(empty, "list-work", "--json").stdout) == []
    assert orjson.loads(run_in(empty, "agent-status", "--json").stdout) == []
    dash = orjson.loads(run_in(empty, "dashboard", "--json").stdout)
    assert (dash["store"], dash["work_total"], dash["agents"]) == (str(where), 0, 0)
    one = run_in(empty, "agent-status", "agent_1_aaaaaaaa")
    _one_line_error(Run(one.returncode, one.stdout, one.stderr), 6)
    assert list(empty.iterdir()) == []  # nothing was created


def test_list_work_limit(swarm) -> None:  # type: ignore[no-untyped-def]
    for index in range(3):
        swarm("add", "feature", f"item {index}")
    assert "… 1 more (use --limit or --json)" in swarm("list-work", "--limit", "2").out
    everything = swarm("list-work", "--limit", "0").out
    assert "more" not in everything and all(f"item {i}" in everything for i in range(3))
    refused = swarm("list-work", "--limit", "-1")
    _one_line_error(refused, 2)
    assert "--limit" in refused.err


def test_an_unknown_log_level_is_one_line(tmp_path: Path) -> None:
    loud = run_in(tmp_path, "list-work", LOG_LEVEL="loud")
    _one_line_error(Run(loud.returncode, loud.stdout, loud.stderr), 2)
    assert "LOG_LEVEL='loud': use one of debug, info, warning, error" in loud.stderr
    assert run_in(tmp_path, "list-work", LOG_LEVEL="DEBUG").returncode == 0


def test_help_teaches_and_exit_codes_are_listed() -> None:
    out = subprocess.run([SWARM, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("claim", "progress", "complete", "list-work", "dashboard", "register"):
        assert command in out
    assert "3 conflict" in out
    claim_help = subprocess.run([SWARM, "claim", "--help"], capture_output=True, text=True).stdout
    assert "--next" in claim_help and "AGENT_ID" in claim_help


def test_flock_timeout_exits_4(tmp_path: Path, cli_env: dict[str, str]) -> None:
    store = Path(cli_env["SWARM_STORE"])
    subprocess.run([SWARM, "compact"], env=cli_env, check=True, capture_output=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR);"
            " fcntl.flock(fd, fcntl.LOCK_EX); print('x', flush=True); time.sleep(30)",
            str(store / ".lock"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        run = subprocess.run(
            [SWARM, "claim", "feature", "x"],
            env=cli_env | {"FLOCK_TIMEOUT": "0.3"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert run.returncode == 4, run.stderr
    assert run.stderr.count("\n") == 1 and "FLOCK_TIMEOUT" in run.stderr
