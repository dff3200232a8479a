"""Reliability defects found by outside tests (issue 13), driven through the real CLI.

Each test reproduces what a hostile user or a crashing machine did: a store file
deleted or emptied, ids with a trailing newline, commands pointed at a typo.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil
import pytest

from .conftest import SWARM, wait_for


def swarm(
    folder: Path, *args: str, store: str | None = "r1", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AGENT_ID", "SWARM_CONFIG", "SWARM_STORE", "LOG_LEVEL", "FLOCK_TIMEOUT")
    }
    if store is not None:
        base["SWARM_STORE"] = store
    return subprocess.run(
        [SWARM, *args], cwd=folder, env=base | env, capture_output=True, text=True, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swarm: error: "), done.stderr
    return lines[0]


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def _compacted_store(tmp_path: Path) -> Path:
    """add a, add b, compact, add c: a store in its second generation."""
    for name in ("a", "b"):
        ok(swarm(tmp_path, "add", "job", name))
    ok(swarm(tmp_path, "compact"))
    ok(swarm(tmp_path, "add", "job", "c"))
    return tmp_path / "r1"


# -- 1. a missing or emptied store file ---------------------------------------------------


@pytest.mark.parametrize("name", ["work_snapshot.json", "agents_snapshot.json"])
def test_a_deleted_snapshot_makes_the_store_refuse_to_open(tmp_path: Path, name: str) -> None:
    store = _compacted_store(tmp_path)
    (store / name).unlink()
    line = one_line_error(swarm(tmp_path, "list-work"), 1)
    assert f"{store / name} is missing" in line and "restore it from a backup" in line
    one_line_error(swarm(tmp_path, "add", "job", "d"), 1)
    assert not (store / name).exists()  # nothing recreated behind the user's back


def test_a_deleted_journal_is_never_recreated_and_nothing_runs_twice(tmp_path: Path) -> None:
    ok(swarm(tmp_path, "add", "job", "a"))
    ok(swarm(tmp_path, "compact"))
    claimed = orjson.loads(ok(swarm(tmp_path, "claim", "--next", "--json", AGENT_ID="a1")))
    ok(swarm(tmp_path, "complete", claimed["work_item_id"], AGENT_ID="a1"))
    (tmp_path / "r1" / "journal.jsonl").unlink()
    line = one_line_error(swarm(tmp_path, "claim", "--next", AGENT_ID="a2"), 1)
    assert f"{tmp_path / 'r1' / 'journal.jsonl'} is missing" in line
    assert not (tmp_path / "r1" / "journal.jsonl").exists()
    one_line_error(swarm(tmp_path, "list-work"), 1)


def test_a_deleted_first_generation_journal_is_noticed(tmp_path: Path) -> None:
    ok(swarm(tmp_path, "add", "job", "a"))
    (tmp_path / "r1" / "journal.jsonl").unlink()
    line = one_line_error(swarm(tmp_path, "list-work"), 1)
    assert "journal.jsonl is missing" in line


def test_an_emptied_journal_or_snapshot_makes_the_store_refuse(tmp_path: Path) -> None:
    store = _compacted_store(tmp_path)
    saved = tmp_path / "saved"
    shutil.copytree(store, saved)
    (store / "journal.jsonl").write_bytes(b"")
    assert "journal.jsonl is empty" in one_line_error(swarm(tmp_path, "list-work"), 1)
    shutil.rmtree(store)
    shutil.copytree(saved, store)
    (store / "work_snapshot.json").write_bytes(b"")
    assert "work_snapshot.json" in one_line_error(swarm(tmp_path, "list-work"), 1)
    shutil.rmtree(store)
    shutil.copytree(saved, store)  # restored from the backup: all three items are back
    assert len(orjson.loads(ok(swarm(tmp_path, "list-work", "--json")))) == 3


def test_a_journal_rolled_back_to_an_older_generation_is_refused(tmp_path: Path) -> None:
    store = _compacted_store(tmp_path)
    old = (store / "journal" / "gen-000001.jsonl").read_bytes()
    (store / "journal.jsonl").unlink()
    (store / "journal.jsonl").write_bytes(old)
    line = one_line_error(swarm(tmp_path, "list-work"), 1)
    assert "is generation 1 but" in line and "gen-000001.jsonl is newer" in line


def test_a_journal_deleted_while_the_store_is_open_stops_writes(tmp_path: Path) -> None:
    from orchestrator.errors import StoreError
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore

    store = FileStore(tmp_path / "s")
    store.add_work(WorkItem(work_item_id="", work_type="t", description="d"))
    (tmp_path / "s" / "journal.jsonl").unlink()
    with pytest.raises(StoreError, match="was deleted while in use"):
        store.add_work(WorkItem(work_item_id="", work_type="t", description="e"))
    store.close()


def test_an_old_generation_pruned_from_the_history_while_a_process_reads_it(
    tmp_path: Path,
) -> None:
    """A process still on the generation another one sealed follows it to the next even
    after the operator removed the sealed copy from journal/ (old generations are theirs
    to prune): that is not the journal deleted while in use."""
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore

    behind, other = FileStore(tmp_path / "s"), FileStore(tmp_path / "s")
    behind.add_work(WorkItem(work_item_id="w1", work_type="t", description="d"))
    other.add_work(WorkItem(work_item_id="w2", work_type="t", description="d"))
    other.compact()
    (tmp_path / "s" / "journal" / "gen-000001.jsonl").unlink()
    behind.add_work(WorkItem(work_item_id="w3", work_type="t", description="d"))
    assert [i.work_item_id for i in other.list_work()] == ["w1", "w2", "w3"]
    behind.close()
    other.close()


def test_a_sealed_journal_deleted_with_nothing_in_its_place_still_stops_writes(
    tmp_path: Path,
) -> None:
    """A seal is not enough to take a journal that lost its name for an old generation:
    a compaction that died right after sealing leaves the sealed file as the journal."""
    from orchestrator.errors import StoreError
    from orchestrator.records import WorkItem
    from orchestrator.store import journal
    from orchestrator.store.file import FileStore

    store = FileStore(tmp_path / "s")
    store.add_work(WorkItem(work_item_id="w1", work_type="t", description="d"))
    with (tmp_path / "s" / "journal.jsonl").open("ab") as fh:
        fh.write(journal.encode({"op": "sealed", "ts": 1.0, "next": 2}))
    assert len(store.list_work()) == 1  # read the seal: no new generation, so it stays
    (tmp_path / "s" / "journal.jsonl").unlink()
    with pytest.raises(StoreError, match="was deleted while in use"):
        store.add_work(WorkItem(work_item_id="w2", work_type="t", description="e"))
    store.close()


def test_a_fresh_store_only_where_no_store_file_exists(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "notes.txt").write_text("mine")
    ok(swarm(tmp_path, "add", "job", "a"))
    assert len(orjson.loads(ok(swarm(tmp_path, "list-work", "--json")))) == 1


# -- 7. ids: a full match ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["agent_nl\n", "agent\nx", "a" * 129])
def test_ids_with_a_trailing_newline_are_refused(tmp_path: Path, value: str) -> None:
    done = swarm(tmp_path, "register", "10", "active", "x", AGENT_ID=value)
    assert "invalid agent id" in one_line_error(done, 2)
    assert not (tmp_path / "r1" / "journal.jsonl").exists()
    done = swarm(tmp_path, "progress", "job_nl\n", "5", AGENT_ID="a1")
    assert "invalid work id" in one_line_error(done, 2)


# -- 8. read-only commands pointed at a place without a store ---------------------------


@pytest.mark.parametrize("make_folder", [False, True])
def test_a_read_only_command_at_a_typo_says_there_is_no_store(
    tmp_path: Path, make_folder: bool
) -> None:
    if make_folder:
        (tmp_path / "typo" / "x").mkdir(parents=True)
    for command in ("list-work", "agent-status", "dashboard"):
        done = swarm(tmp_path, "--store", "typo/x", command, store=None)
        line = one_line_error(done, 6)
        assert f"no store at {tmp_path / 'typo' / 'x'}" in line, command
    assert not (tmp_path / "typo" / "x" / "journal.jsonl").exists()
    assert list((tmp_path / "typo").glob("x/*")) == []


# -- 2. a lock held by an outside process ------------------------------------------------

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
"""


def hold_lock(lock: Path, folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A real process holding the store lock until the returned file is created."""
    held, release = folder / "held", folder / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(held), str(release)])
    wait_for(held.exists)
    return holder, release


def test_a_lock_held_past_flock_timeout_delays_the_swarm_but_does_not_stop_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "swarm.toml").write_text(
        '[store]\nlease_s = 10\n\n[[agents]]\nname = "w"\ncount = 2\n'
    )
    env = {"FLOCK_TIMEOUT": "1"}
    ok(swarm(tmp_path, "up", "--detach", store=None, **env))
    holder: subprocess.Popen[bytes] | None = None
    try:
        supervisor = orjson.loads((tmp_path / "real_agents" / "supervisor.json").read_bytes())
        agents = [a["pid"] for a in supervisor["agents"]]
        holder, release = hold_lock(tmp_path / "agent_coordination" / ".lock", tmp_path)
        # A one-shot command gives up after FLOCK_TIMEOUT, exit 4.
        line = one_line_error(swarm(tmp_path, "add", "job", "x", store=None, **env), 4)
        assert "timed out after 1s waiting for the store lock" in line
        log = tmp_path / "real_agents" / "supervisor.log"
        wait_for(lambda: "still waiting" in log.read_text(), timeout=60)
        assert psutil.pid_exists(supervisor["pid"]) and all(map(psutil.pid_exists, agents))
        release.touch()
        holder.wait(timeout=30)
        wait_for(lambda: "got the store lock" in log.read_text(), timeout=60)
        payload = '{"argv": ["true"]}'
        work_id = ok(swarm(tmp_path, "add", "t", "after", "-q", "--payload", payload, store=None))
        work_id = work_id.strip()

        def completed() -> bool:
            listed = swarm(tmp_path, "list-work", "--all", "--json", store=None)
            return any(
                i["work_item_id"] == work_id and i["status"] == "completed"
                for i in orjson.loads(ok(listed))
            )

        wait_for(completed, timeout=60)
        assert "timed out" not in log.read_text()
        status = orjson.loads(ok(swarm(tmp_path, "status", "--json", store=None)))
        assert status["alive"] and status["pid"] == supervisor["pid"]
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        swarm(tmp_path, "down", store=None)


# -- 3. one result file per item, whatever its id ----------------------------------------

LONGEST = "L" + "." * 126 + "x"  # 128 characters, as long as an id may be
IDS = ["job.1", "job.2", "job", LONGEST, LONGEST[:-1] + "y"]


def test_ids_differing_after_a_dot_get_one_result_file_each(tmp_path: Path) -> None:
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore

    (tmp_path / "swarm.toml").write_text('[store]\nlease_s = 10\n\n[[agents]]\nname = "w"\n')
    store = FileStore(tmp_path / "agent_coordination")
    for work_id in IDS:
        argv = ["sh", "-c", f"echo out-{work_id}"]
        store.add_work(WorkItem(work_id, "t", work_id, payload={"argv": argv}))
    store.close()
    ok(swarm(tmp_path, "up", "--until-drained", store=None))
    results = tmp_path / "real_work_results"
    assert sorted(p.name for p in results.glob("*.json")) == sorted(f"{i}.json" for i in IDS)
    for work_id in IDS:
        record = orjson.loads((results / f"{work_id}.json").read_bytes())
        assert record["work_item_id"] == work_id
        assert record["output"]["stdout"] == f"out-{work_id}\n"


def test_settling_pending_results_keeps_each_items_file(tmp_path: Path) -> None:
    from agents.results import reconcile, write_pending
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore

    store = FileStore(tmp_path / "store")
    results = tmp_path / "results"
    agents = {"job.1": "a.1", "job.2": "a.2", LONGEST: "A" * 128}
    for work_id, agent in agents.items():
        store.add_work(WorkItem(work_id, "t", "d"))
        claimed = store.claim(agent)
        assert claimed is not None and claimed.work_item_id == work_id
        done = store.complete(work_id, "success", agent_id=agent)
        write_pending(
            str(results), {"work_item_id": work_id, "agent_id": agent, "status": done.status}
        )
    # A killed agent's pending file is settled without touching the others'.
    assert reconcile(str(results), store, "a.1") == 1
    assert sorted(p.name for p in results.glob("*.json")) == ["job.1.json"]
    assert reconcile(str(results), store) == 2
    assert sorted(p.name for p in results.glob("*.json")) == sorted(f"{i}.json" for i in agents)
    assert not list((results / ".pending").iterdir())
    store.close()


# -- 4. secrets out of error text, and out of commands' environment ------------------------


def test_a_key_echoed_by_an_endpoint_reaches_no_file(tmp_path: Path) -> None:
    from .fake_llm import FakeLLM, claude_echo

    key = "sk-ant-echoed-secret-key-8675309"
    token = "my-service-token-5551212"
    with FakeLLM() as claude:
        claude.replies.extend([claude_echo(header="authorization") for _ in range(12)])
        (tmp_path / "swarm.toml").write_text(
            f'[[agents]]\nname = "c"\nbackend = "claude"\nhost = "{claude.url}"\nretries = 0\n\n'
            '[[work]]\nwork_type = "ask"\ndescription = "q"\ncount = 2\n'
        )
        done = swarm(
            tmp_path,
            "up",
            "--until-drained",
            store=None,
            ANTHROPIC_API_KEY=key,
            MY_SERVICE_TOKEN=token,
            LOG_LEVEL="debug",
            OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer {token}",
        )
        assert done.returncode == 1, done.stderr  # the items end dead
        assert any(key in r["headers"].get("authorization", "") for r in claude.requests)
    assert key not in done.stdout + done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"journal.jsonl", "telemetry_spans.jsonl"} <= names, names
    for path in written:
        data = path.read_bytes()
        assert key.encode() not in data and token.encode() not in data, path
    results = [
        orjson.loads(p.read_bytes()) for p in (tmp_path / "real_work_results").glob("*.json")
    ]
    assert len(results) == 2
    assert all(
        r["error"].startswith("[redacted] is not a valid key") or "[redacted]" in r["error"]
        for r in results
    ), results


# -- 6. finite, bounded numbers; deep nesting; bad globs ---------------------------------

NESTED = "x = " + "[" * 500 + "]" * 500 + "\n"


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[store]\ncompact_mb = inf\n", "[store] compact_mb: Input should be a finite number"),
        ("[store]\nlease_s = inf\n", "[store] lease_s: Input should be a finite number"),
        ("[store]\nlease_s = nan\n", "[store] lease_s: Input should be a finite number"),
        ('[[agents]]\nname = "w"\nstop_timeout_s = inf\n', "stop_timeout_s: Input should be"),
        ('[[agents]]\nname = "w"\nstop_timeout_s = 1e300\n', "stop_timeout_s: must be at most"),
        (
            '[[limits]]\nname = "l"\nbackend = "claude"\nrequests_per_minute = inf\n',
            "requests_per_minute: Input should be a finite number",
        ),
        ("[intelligence]\ntimeout_s = inf\n", "timeout_s: Input should be a finite number"),
        ("[maintenance]\nwork_archive_days = 1e300\n", "must be at most"),
        ("[maintenance]\nwork_archive_days = nan\n", "Input should be a finite number"),
        (NESTED, "nested too deeply"),
        ('[[work]]\nwork_type = "t"\ndescription = "d"\nforeach = "***/x"\n', "not a valid glob"),
    ],
)
def test_values_that_crashed_later_are_refused_up_front(
    tmp_path: Path, toml: str, says: str
) -> None:
    (tmp_path / "swarm.toml").write_text(toml)
    for command in (["list-work"], ["up"], ["add", "t", "x"]):
        line = one_line_error(swarm(tmp_path, *command, store=None), 2)
        assert says in line, (command, line)
    check = swarm(tmp_path, "validate", store=None)
    assert check.returncode == 1 and "FAIL config: " in check.stdout
    assert says in check.stdout and "Traceback" not in check.stdout + check.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300", "soon"])
def test_flock_timeout_must_be_a_finite_number(tmp_path: Path, value: str) -> None:
    line = one_line_error(swarm(tmp_path, "add", "t", "x", FLOCK_TIMEOUT=value), 2)
    assert f"FLOCK_TIMEOUT={value!r}" in line


def test_a_command_gets_only_its_groups_allow_list_unless_it_inherits(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text(
        '[[agents]]\nname = "strict"\nwork_types = ["s"]\nenv = ["MY_VAR", "MY_PREFIX_*"]\n\n'
        '[[agents]]\nname = "open"\nwork_types = ["o"]\ninherit_env = true\n\n'
        '[[work]]\nwork_type = "s"\ndescription = "strict"\npayload = { argv = ["env"] }\n\n'
        '[[work]]\nwork_type = "o"\ndescription = "open"\npayload = { argv = ["env"] }\n\n'
        '[[work]]\nwork_type = "s"\ndescription = "no folder"\n'
        'payload = { argv = ["true"], cwd = "no/such/folder" }\n'
    )
    env = {
        "MY_VAR": "visible",
        "MY_PREFIX_A": "prefixed",
        "OTHER_VAR": "not-for-commands",
        "ANTHROPIC_API_KEY": "sk-ant-not-for-commands-1234",
    }
    done = swarm(tmp_path, "up", "--until-drained", store=None, **env)
    assert done.returncode == 1, done.stderr  # the item without its folder ends dead
    files = (tmp_path / "real_work_results").glob("*.json")
    results = {r["description"]: r for r in (orjson.loads(p.read_bytes()) for p in files)}

    def seen(description: str) -> dict[str, str]:
        lines = results[description]["output"]["stdout"].splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    strict, inherited = seen("strict"), seen("open")
    assert strict["MY_VAR"] == "visible" and strict["MY_PREFIX_A"] == "prefixed"
    assert {"PATH", "HOME", "SWARM_WORK_ITEM_ID", "SWARM_AGENT_ID"} <= set(strict)
    assert "OTHER_VAR" not in strict and "ANTHROPIC_API_KEY" not in strict
    assert set(strict) <= {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "TMPDIR",
        "USER",
        "LOGNAME",
        "PWD",
        "SHLVL",
        "_",
        "SWARM_WORK_ITEM_ID",
        "SWARM_AGENT_ID",
        "MY_VAR",
        "MY_PREFIX_A",
    } | {k for k in strict if k.startswith("LC_")}
    assert inherited["OTHER_VAR"] == "not-for-commands"
    error = results["no folder"]["error"]
    assert "payload.cwd 'no/such/folder' is not a folder" in error, error


def test_a_bad_env_name_in_a_group_is_refused(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[[agents]]\nname = "w"\nenv = ["NOT-A-NAME"]\n')
    line = one_line_error(swarm(tmp_path, "up", store=None), 2)
    assert "env: 'NOT-A-NAME' is not a variable name" in line


# -- 5. agents killed with their supervisor are retired ----------------------------------


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_agents_killed_with_their_supervisor_are_retired_by_the_next(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store_table = "[store]\nlease_s = 5\n"
    if backend == "postgres":
        dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        store_table += f'backend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n'
    (tmp_path / "swarm.toml").write_text(f'{store_table}\n[[agents]]\nname = "w"\ncount = 2\n')

    def registered() -> list[dict[str, object]]:
        listed = orjson.loads(ok(swarm(tmp_path, "agent-status", "--json", store=None)))
        assert isinstance(listed, list)
        return listed

    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
    first = subprocess.Popen(
        [SWARM, "up"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(registered()) == 2, timeout=60)
        dead = {a["agent_id"] for a in registered()}
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the supervisor and its agents, together
        first.wait()
    wait_for(lambda: not any(psutil.pid_exists(int(a["pid"])) for a in registered()))  # type: ignore[call-overload]
    assert {a["agent_id"] for a in registered()} == dead  # nobody said goodbye for them
    ok(swarm(tmp_path, "up", "--detach", store=None))
    try:
        live = lambda: {a["agent_id"] for a in registered()}  # noqa: E731
        wait_for(lambda: len(live()) == 2 and not live() & dead, timeout=60)
        status = orjson.loads(ok(swarm(tmp_path, "status", "--json", store=None)))
        assert sum(status["agents_by_host"].values()) == 2
    finally:
        ok(swarm(tmp_path, "down", store=None))
    assert registered() == []


def test_an_agent_silent_past_the_limit_is_retired_on_any_host(tmp_path: Path) -> None:
    from orchestrator.records import Agent, WorkItem
    from orchestrator.retire import retire_dead_agents, stale_after_s
    from orchestrator.store.file import FileStore

    store = FileStore(tmp_path / "s", lease_s=60)
    for agent_id in ("far_away", "recent"):
        store.register(Agent(agent_id, host="other-host", pid=1))
    store.add_work(WorkItem("w1", "t", "d"))
    assert store.claim("far_away") is not None
    now = time.time()
    limit = stale_after_s(60)
    assert limit == 600  # ten leases, at least ten minutes (README, "Agents")
    assert retire_dead_agents(store, "this-host", 60, now=now + limit - 1) == []
    retired = retire_dead_agents(store, "this-host", 60, now=now + limit + 1)
    assert sorted(retired) == ["far_away", "recent"]
    assert store.get("w1").status == "pending" and store.list_agents() == []
    store.close()


# -- 8. a second swarm up ----------------------------------------------------------------


def test_two_detached_starts_at_once_one_runs_the_other_exits_3(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text('[[agents]]\nname = "w"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
    starts = [
        subprocess.Popen(
            [SWARM, "up", "--detach"],
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        ended = [(p.wait(timeout=120), p.communicate()[1]) for p in starts]
        assert sorted(code for code, _ in ended) == [0, 3], ended
        refused = next(err for code, err in ended if code == 3)
        assert refused.startswith("swarm: error: another supervisor") and refused.count("\n") == 1
        third = swarm(tmp_path, "up", "--detach", store=None)
        assert "another supervisor" in one_line_error(third, 3)
    finally:
        swarm(tmp_path, "down", store=None)


def test_deleting_swarmsh_views_loses_nothing(tmp_path: Path) -> None:
    store = _compacted_store(tmp_path)
    for view in ("work_claims.json", "agents.json", "agent_status.json"):
        (store / view).unlink(missing_ok=True)  # views are written, never read back
    assert len(orjson.loads(ok(swarm(tmp_path, "list-work", "--json")))) == 3
