"""Issue 13's scenarios against a real swarm: a store file deleted or emptied, an outside
process holding the store lock past FLOCK_TIMEOUT, an endpoint echoing the API key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import SWARM, wait_for
from ..fake_llm import FakeLLM, claude_echo
from .conftest import scale
from .harness import ChaosRun, Report, record

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
"""


def _swarm(store: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")} | extra
    return subprocess.run(
        [SWARM, "--store", str(store), *args], env=env, capture_output=True, text=True
    )


def test_store_files_deleted_or_emptied_after_a_run(tmp_path: Path) -> None:
    run = ChaosRun(tmp_path / "run", items=scale(150, 1500), agents=3)
    run.start()
    assert run.wait() == 0
    source = Path(run.target)
    assert _swarm(source, "compact").returncode == 0  # a second generation, with snapshots
    damages = [
        ("journal.jsonl", "deleted"),
        ("journal.jsonl", "emptied"),
        ("work_snapshot.json", "deleted"),
        ("work_snapshot.json", "emptied"),
        ("agents_snapshot.json", "deleted"),
        ("journal.jsonl", "replaced by the previous generation"),
    ]
    refused = 0
    for n, (name, how) in enumerate(damages):
        copy = tmp_path / f"damaged{n}"
        shutil.copytree(source, copy)
        target = copy / name
        if how == "deleted":
            target.unlink()
        elif how == "emptied":
            target.write_bytes(b"")
        else:
            target.unlink()
            shutil.copy(copy / "journal" / "gen-000001.jsonl", target)
        for command in (["list-work", "--all"], ["claim", "--next"]):
            done = _swarm(copy, *command)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 1 and len(lines) == 1, (name, how, done.stderr)
            assert name in lines[0] and "restore it from a backup" in lines[0], lines
        assert (how != "deleted") or not target.exists(), (name, how)  # never recreated
        refused += 1
        shutil.rmtree(copy)
    # Restored from the copy: every item is there, completed.
    listed = _swarm(source, "list-work", "--all", "--json")
    assert listed.returncode == 0 and listed.stdout.count('"completed"') == len(run.ids)
    report = record(
        Report(
            "store file deleted, emptied or rolled back",
            len(run.ids),
            len(damages),
            completed=len(run.ids),
        )
    )
    report.notes.append(
        f"{refused} of {len(damages)} damaged copies refused to open (exit 1, one line naming"
        " the file and how to restore it); none recreated state; the intact store kept all"
    )


def test_an_outside_process_holds_the_store_lock_past_flock_timeout(tmp_path: Path) -> None:
    run = ChaosRun(
        tmp_path, items=scale(300, 3000), agents=3, sleep_s=0.005, extra_env={"FLOCK_TIMEOUT": "1"}
    )
    run.start()
    wait_for(lambda: run.completed() >= len(run.ids) // 4, timeout=300)
    held, release = tmp_path / "held", tmp_path / "release"
    lock = Path(run.target) / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(held), str(release)])
    try:
        wait_for(held.exists)
        log = tmp_path / "supervisor.log"
        wait_for(lambda: "still waiting" in log.read_text(), timeout=120)
        one_shot = _swarm(Path(run.target), "add", "t", "x", FLOCK_TIMEOUT="1")
        alive = run.proc is not None and run.proc.poll() is None
    finally:
        release.touch()
        holder.wait(timeout=60)
    assert one_shot.returncode == 4 and "timed out after 1s" in one_shot.stderr
    assert alive, "the supervisor stopped while the lock was held"
    assert run.wait() == 0, (tmp_path / "supervisor.log").read_text()[-2000:]
    report = run.check("an outside process holds the store lock past FLOCK_TIMEOUT", 1)
    report.notes.append(
        "FLOCK_TIMEOUT=1, lock held until the supervisor logged its wait: the supervisor and"
        " agents waited and carried on; a one-shot `swarm add` meanwhile exited 4"
    )
    assert report.ok, report


def test_an_endpoint_echoing_the_api_key(tmp_path: Path) -> None:
    key = "sk-ant-chaos-echoed-key-0123456789"
    items = scale(3, 10)
    with FakeLLM() as claude:
        claude.replies.extend(claude_echo(header="authorization") for _ in range(items * 3))
        (tmp_path / "swarm.toml").write_text(
            f'[[agents]]\nname = "c"\nbackend = "claude"\nhost = "{claude.url}"\nretries = 0\n\n'
            f'[[work]]\nwork_type = "ask"\ndescription = "q"\ncount = {items}\n'
        )
        env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
        env |= {"ANTHROPIC_API_KEY": key, "LOG_LEVEL": "debug"}
        done = subprocess.run(
            [SWARM, "up", "--until-drained"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        echoed = sum(key in r["headers"].get("authorization", "") for r in claude.requests)
    assert done.returncode == 1 and echoed >= items, done.stderr  # every item ends dead
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    leaking = [p for p in written if key.encode() in p.read_bytes()]
    assert not leaking and key not in done.stdout + done.stderr, leaking
    report = record(Report("an endpoint echoes the API key in its errors", items, echoed))
    report.notes.append(
        f"{echoed} error answers carried the key; it reached none of the {len(written)} files"
        " written (journal, result files, spans, logs) nor the output"
    )
