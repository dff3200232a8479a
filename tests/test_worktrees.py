"""`swarm worktree` on real git repositories in temporary folders: allocation among
many processes at once, ports in use, a create killed half-way, merge to a bare remote,
a PostgreSQL database per worktree, and agents working in per-item worktrees."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from .conftest import SWARM, wait_for

IDENTITY = {
    "GIT_AUTHOR_NAME": "Tess Ter",
    "GIT_AUTHOR_EMAIL": "tess@example.org",
    "GIT_COMMITTER_NAME": "Tess Ter",
    "GIT_COMMITTER_EMAIL": "tess@example.org",
}


def free_base_port() -> int:
    """A base port whose slots are unlikely to be used by another test run at once, all
    three ranges below the ephemeral ports (32768+) that outgoing connections take."""
    return 20000 + secrets.randbelow(100) * 100


class Repo:
    """A repository at root/repo with one commit, and a swarm.toml beside it (outside
    the checkout, so the main checkout stays clean)."""

    def __init__(self, root: Path, extra: str = "", base_port: int | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "repo"
        self.base_port = base_port or free_base_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
        self.env |= IDENTITY | {"SWARM_CONFIG": str(root / "swarm.toml")}
        self.git("init", "-q", "-b", "main", str(self.path), cwd=root)
        (self.path / "README").write_text("hello\n")
        self.git("add", "README")
        self.git("commit", "-q", "-m", "first")
        (root / "swarm.toml").write_text(
            f'[store]\npath = "store"\nlease_s = 30\n\n[worktrees]\nrepo = "repo"\n'
            f"base_port = {self.base_port}\n{extra}"
        )

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def swarm(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SWARM, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str) -> Any:
        run = self.swarm(*args, "--json")
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    def worktrees(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.ok("worktree", "list")
        return listed

    def git_worktrees(self) -> list[str]:
        listing = self.git("worktree", "list", "--porcelain")
        return [
            line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")
        ]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path)


def test_create_gives_a_branch_ports_database_and_env(repo: Repo) -> None:
    made = repo.ok("worktree", "create", "login-page")
    path = Path(made["path"])
    assert path == repo.root / "repo-worktrees" / "login-page"
    assert made["state"] == "ready" and made["branch"] == "feature/login-page"
    port = repo.base_port + 1
    assert made["ports"] == {"app": port, "asset": port + 1000, "livereload": port + 2000}
    assert made["database"] == "repo_login_page"
    env = dict(
        line.split("=", 1) for line in (path / ".env").read_text().splitlines() if "=" in line
    )
    assert env["PORT"] == str(port) and env["LIVERELOAD_PORT"] == str(port + 2000)
    assert env["SWARM_STORE"] == str(repo.root / "store")
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "worktree=login-page"
    assert repo.git("-C", str(path), "branch", "--show-current") == "feature/login-page"
    # The .env is ignored, so neither checkout shows a change.
    assert repo.git("-C", str(path), "status", "--porcelain") == ""
    assert repo.git("status", "--porcelain") == ""
    # Commands run with the .env coordinate through the shared store, tagged by worktree.
    spans = repo.root / "worktree-spans.jsonl"
    added = subprocess.run(
        [SWARM, "add", "t", "from the worktree", "-q"],
        cwd=path,
        env=repo.env | env | {"TELEMETRY_SPANS_FILE": str(spans)},
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    [item] = [i for i in repo.ok("list-work") if i["work_item_id"] == added.stdout.strip()]
    assert item["description"] == "from the worktree"
    [span] = [json.loads(line) for line in spans.read_text().splitlines()]
    assert span["resource"]["worktree"] == "login-page"
    again = repo.swarm("worktree", "create", "login-page")
    assert again.returncode == 3 and "worktree login-page exists (ready)" in again.stderr
    bad = repo.swarm("worktree", "create", "../escape")
    assert bad.returncode == 2 and "feature name" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def create_at_once(repo: Repo, count: int) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [SWARM, "worktree", "create", f"f{n}", "--json"],
            cwd=repo.path,
            env=repo.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    made = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        made.append(json.loads(out))
    ports = [port for m in made for port in m["ports"].values()]
    assert len(set(ports)) == 3 * count
    assert len({m["database"] for m in made}) == count
    assert len({m["path"] for m in made}) == count
    assert len({m["slot"] for m in made}) == count
    assert len(repo.git_worktrees()) == count + 1
    assert {w["state"] for w in repo.worktrees()} == {"ready"}
    return made


@pytest.mark.slow
def test_16_processes_creating_at_once_get_distinct_ports_and_names(repo: Repo) -> None:
    create_at_once(repo, 16)


@pytest.mark.slow
def test_creates_at_once_through_a_postgresql_store(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    repo = Repo(tmp_path)
    config = (tmp_path / "swarm.toml").read_text()
    store = f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n'
    (tmp_path / "swarm.toml").write_text(config.replace('[store]\npath = "store"\n', store))
    create_at_once(repo, 8)
    with psycopg.connect(pg_dsn) as conn:
        slots = conn.execute(
            f"SELECT count(*) FROM {pg_schema}.named_records WHERE namespace = 'worktree-slot'"
        ).fetchone()
    assert slots == (8,)


def test_a_port_something_listens_on_is_skipped(repo: Repo) -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", repo.base_port + 1000 + 1))  # slot 1's asset port
        busy.listen()
        made = repo.ok("worktree", "create", "one")
    assert made["slot"] == 2
    assert made["ports"]["app"] == repo.base_port + 2
    assert repo.ok("worktree", "create", "two")["slot"] == 1  # free again


def test_a_create_killed_half_way_is_broken_and_remove_force_cleans_it(repo: Repo) -> None:
    # git runs post-checkout inside `git worktree add`: the create is killed there.
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    marker = repo.root / "in-hook"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexec sleep 600\n")
    hook.chmod(0o755)
    proc = subprocess.Popen(
        [SWARM, "worktree", "create", "doomed"],
        cwd=repo.path,
        env=repo.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(marker.exists, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    hook.unlink()
    [tree] = repo.worktrees()
    assert (tree["feature"], tree["state"]) == ("doomed", "broken")
    refused = repo.swarm("worktree", "remove", "doomed")
    assert refused.returncode == 3 and "--force" in refused.stderr
    repo.ok("worktree", "remove", "doomed", "--force")
    assert repo.worktrees() == []
    assert repo.git_worktrees() == [str(repo.path)]
    assert not (repo.root / "repo-worktrees" / "doomed").exists()
    made = repo.ok("worktree", "create", "doomed")  # the name and slot are free again
    assert made["state"] == "ready" and made["slot"] == 1


def test_merge_pushes_to_a_bare_remote_and_refuses_what_cannot_merge(repo: Repo) -> None:
    made = repo.ok("worktree", "create", "feat")
    path = Path(made["path"])
    nothing = repo.swarm("worktree", "merge", "feat")
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        "swarm: error: nothing to merge: feature/feat has no commit that main lacks"
    )
    repo.git("init", "-q", "--bare", str(repo.root / "origin.git"), cwd=repo.root)
    repo.git("remote", "add", "origin", str(repo.root / "origin.git"))
    (path / "feature.txt").write_text("new\n")
    dirty = repo.swarm("worktree", "remove", "feat")
    assert dirty.returncode == 3 and "1 uncommitted change" in dirty.stderr
    merged = repo.ok("worktree", "merge", "feat", "-m", "Add the feature")
    assert merged["committed"] and merged["ahead"] == 1
    assert merged["pushed_to"] == str(repo.root / "origin.git")
    assert "pull request from feature/feat into main" in merged["pull_request"]
    remote = repo.root / "origin.git"
    assert repo.git("--git-dir", str(remote), "show", "feature/feat:feature.txt") == "new"
    assert repo.git("--git-dir", str(remote), "log", "-1", "--format=%s", "feature/feat") == (
        "Add the feature"
    )
    # A change of the same line on main and on the branch: refused, nothing pushed.
    (repo.path / "README").write_text("main's\n")
    repo.git("commit", "-qam", "main changes README")
    (path / "README").write_text("feature's\n")
    conflict = repo.swarm("worktree", "merge", "feat")
    assert conflict.returncode == 3
    assert "feature/feat conflicts with main in README" in conflict.stderr
    repo.ok("worktree", "remove", "feat")
    assert repo.worktrees() == [] and not path.exists()
    assert repo.git("branch", "--list", "feature/feat")  # the branch stays


def test_dashboard_shows_agents_items_and_disk(repo: Repo) -> None:
    repo.ok("worktree", "create", "a")
    board = repo.ok("worktree", "dashboard")
    assert board["summary"]["worktrees"] == 1 and board["summary"]["states"] == {"ready": 1}
    [row] = board["worktrees"]
    assert row["disk_bytes"] > 0 and row["ahead"] == 0 and row["uncommitted"] == 0
    text = repo.swarm("worktree", "dashboard")
    assert text.returncode == 0 and "Worktrees: 1 (1 ready)" in text.stdout


@pytest.fixture
def pg_project(pg_dsn: str) -> Iterator[str]:
    project = f"t_{secrets.token_hex(5)}"
    yield project
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{project}%",)
        ).fetchall():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _databases(dsn: str, project: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{project}%",)
        ).fetchall()
    return [row[0] for row in rows]


def test_a_postgresql_database_is_created_and_dropped(
    tmp_path: Path, pg_dsn: str, pg_project: str
) -> None:
    repo = Repo(tmp_path, f'project = "{pg_project}"\ndatabase_dsn = "{pg_dsn}"\n')
    made = repo.ok("worktree", "create", "db-feature")
    name = f"{pg_project}_db_feature"
    assert made["database"] == name and made["database_created"]
    assert _databases(pg_dsn, pg_project) == [name]
    env = (Path(made["path"]) / ".env").read_text()
    url = pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    assert f"DATABASE_URL={url}\n" in env
    with psycopg.connect(url) as conn:  # the worktree's own database answers
        conn.execute("CREATE TABLE t (x int)")
    repo.ok("worktree", "remove", "db-feature")
    assert _databases(pg_dsn, pg_project) == []


EDIT = (
    "import os, pathlib; w = os.environ['SWARM_WORK_ITEM_ID'];"
    " pathlib.Path(f'{w}.txt').write_text(os.environ['PORT'] + chr(10))"
)


@pytest.mark.slow
def test_8_agents_in_per_item_worktrees_make_8_branches_and_leave_main_clean(
    tmp_path: Path,
) -> None:
    repo = Repo(
        tmp_path,
        '\n[[agents]]\nname = "coder"\ncount = 8\nworktree = "per-item"\nbase = "main"\n'
        f'\n[[work]]\nwork_type = "edit"\ndescription = "edit"\ncount = 8\n'
        f'payload = {{ argv = ["python3", "-c", {json.dumps(EDIT)}] }}\n',
    )
    run = repo.swarm("up", "--until-drained", timeout=300)
    assert run.returncode == 0, run.stderr
    results = [json.loads(p.read_text()) for p in (tmp_path / "real_work_results").glob("*.json")]
    assert len(results) == 8 and {r["status"] for r in results} == {"completed"}
    branches = repo.git("branch", "--list", "swarm/*", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(f"swarm/{r['work_item_id']}" for r in results)
    for result in results:
        work_id, tree = result["work_item_id"], result["details"]["worktree"]
        assert tree["branch"] == f"swarm/{work_id}"
        assert tree["commit"] == repo.git("rev-parse", f"swarm/{work_id}")
        assert f"{work_id}.txt | 1 +" in tree["diff_stat"]
        author = repo.git("log", "-1", "--format=%an <%ae>", tree["branch"])
        assert author == f"swarm agent <{result['agent_id']}>"
        changed = repo.git("show", "--name-only", "--format=", tree["branch"])
        assert changed == f"{work_id}.txt"  # its own file only, and no .env
        assert repo.git("rev-list", "--count", f"main..{tree['branch']}") == "1"
        # It ran with its worktree's port in the environment.
        assert repo.git("show", f"{tree['branch']}:{work_id}.txt") == str(tree["port"])
    assert repo.git("status", "--porcelain") == ""
    assert sorted(p.name for p in repo.path.iterdir()) == [".git", "README"]
    assert {w["state"] for w in repo.worktrees()} == {"ready"}  # keep = true: still there


@pytest.mark.slow
def test_the_offline_coding_example_runs(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "coding.toml"
    config = tmp_path / "examples" / "coding.toml"
    config.parent.mkdir()
    port = free_base_port()
    config.write_text(example.read_text().replace("base_port = 4000", f"base_port = {port}"))
    repo = Repo(tmp_path / "examples" / "run" / "coding", base_port=port)  # repo/ in there
    repo.env["SWARM_CONFIG"] = str(config)
    run = repo.swarm("up", "--until-drained", timeout=300)
    assert run.returncode == 0, run.stderr
    trees = repo.worktrees()
    assert len(trees) == 3 and {t["ahead"] for t in trees} == {1}
    for tree in trees:
        notes = repo.git("show", f"{tree['branch']}:NOTES.md")
        prefix = f"- {tree['feature']}: greeting module (app port "
        assert notes.startswith(prefix) and notes.endswith(")")
        assert repo.base_port < int(notes[len(prefix) : -1]) <= repo.base_port + 64
    assert repo.git("status", "--porcelain") == ""


WRITE = "import os, pathlib; pathlib.Path(os.environ['SWARM_WORK_ITEM_ID']).write_text('x')"


@pytest.mark.slow
def test_per_agent_worktrees_keep_false_and_a_failed_item_left_for_inspection(
    tmp_path: Path,
) -> None:
    argv = json.dumps(["python3", "-c", WRITE])
    failing = json.dumps(["sh", "-c", "echo half done > partial.txt; exit 1"])
    repo = Repo(
        tmp_path,
        '\n[[agents]]\nname = "solo"\ncount = 1\nworktree = "per-agent"\nwork_types = ["a"]\n'
        '\n[[agents]]\nname = "tidy"\ncount = 1\nworktree = "per-item"\nkeep = false\n'
        'work_types = ["b"]\n'
        '\n[[agents]]\nname = "clumsy"\ncount = 1\nworktree = "per-item"\nwork_types = ["c"]\n'
        f'\n[[work]]\nwork_type = "a"\ndescription = "a"\ncount = 2\n'
        f"payload = {{ argv = {argv} }}\n"
        f'\n[[work]]\nwork_type = "b"\ndescription = "b"\npayload = {{ argv = {argv} }}\n'
        f'\n[[work]]\nwork_type = "c"\ndescription = "c"\npayload = {{ argv = {failing} }}\n',
    )
    run = repo.swarm("up", "--until-drained", timeout=300)
    assert run.returncode == 1 and "1 item(s) ended dead" in run.stderr, run.stderr
    every = [json.loads(p.read_text()) for p in (tmp_path / "real_work_results").glob("*.json")]
    results = {r["work_type"]: r for r in every}
    solo = [r for r in every if r["work_type"] == "a"]
    trees = {t["feature"]: t for t in repo.worktrees()}
    # per-agent: both items on the agent's one branch, one commit each.
    [agent_id] = {r["agent_id"] for r in solo}
    assert {r["details"]["worktree"]["branch"] for r in solo} == {f"swarm/{agent_id}"}
    assert trees[agent_id]["ahead"] == 2 and trees[agent_id]["state"] == "ready"
    # keep = false: committed, then the worktree removed; the branch stays.
    tidy = results["b"]["details"]["worktree"]
    assert tidy["commit"] == repo.git("rev-parse", tidy["branch"])
    assert tidy["feature"] not in trees and not Path(tidy["path"]).exists()
    # A failure commits nothing and leaves the worktree and its branch as they were.
    clumsy = results["c"]
    assert clumsy["status"] == "dead" and "commit" not in clumsy["details"]["worktree"]
    left = trees[clumsy["work_item_id"]]
    assert left["ahead"] == 0 and left["uncommitted"] == 1
    assert (Path(left["path"]) / "partial.txt").read_text() == "half done\n"
    assert repo.git("status", "--porcelain") == ""


def test_git_lock_contention_is_waited_out(repo: Repo) -> None:
    # Another git process holds the new branch's ref lock for a moment.
    lock = repo.path / ".git" / "refs" / "heads" / "feature" / "waiting.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    proc = subprocess.Popen(
        [SWARM, "worktree", "create", "waiting", "--json"],
        cwd=repo.path,
        env=repo.env | {"LOG_LEVEL": "debug"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "lock held by another process; retrying" in line:
            break
    lock.unlink()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "ready"


def test_urls_in_env_files_never_carry_a_password() -> None:
    from orchestrator.locations import without_password
    from orchestrator.worktrees.alloc import database_url

    dsn = "postgresql://app:s3cret@db.example.org:6543/postgres?sslmode=require"
    assert without_password(dsn) == "postgresql://app@db.example.org:6543/postgres?sslmode=require"
    assert database_url(dsn, "shop_login") == (
        "postgresql://app@db.example.org:6543/shop_login?sslmode=require"
    )
    assert without_password("/var/lib/store") == "/var/lib/store"


def test_a_create_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    dsn = "postgresql://postgres:hunter2@127.0.0.1:1/postgres"  # nothing listens on port 1
    repo = Repo(tmp_path, f'database_dsn = "{dsn}"\n')
    run = repo.swarm("worktree", "create", "nodb")
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(
        "swarm: error: cannot create database repo_nodb at postgresql://postgres@127.0.0.1:1/"
    )
    assert "hunter2" not in run.stderr
    assert repo.worktrees() == [] and repo.git_worktrees() == [str(repo.path)]
    assert not (tmp_path / "repo-worktrees" / "nodb").exists()
    assert b"hunter2" not in b"".join(  # the database (state.sqlite) too
        p.read_bytes() for p in (tmp_path / "store").iterdir() if p.is_file()
    )


@pytest.mark.slow
def test_agent_worktrees_hold_ports_only_while_an_item_runs(tmp_path: Path) -> None:
    argv = json.dumps(["python3", "-c", WRITE])
    repo = Repo(
        tmp_path,
        "max_worktrees = 1\n"  # one slot for five worktrees: each gives it back when done
        '\n[[agents]]\nname = "one"\ncount = 1\nworktree = "per-item"\n'
        f'\n[[work]]\nwork_type = "t"\ndescription = "t"\ncount = 5\n'
        f"payload = {{ argv = {argv} }}\n",
    )
    run = repo.swarm("up", "--until-drained", timeout=300)
    assert run.returncode == 0, run.stderr
    trees = repo.worktrees()
    assert len(trees) == 5 and {t["ahead"] for t in trees} == {1}
    assert {t["ports"] is None for t in trees} == {True}
    every = [json.loads(p.read_text()) for p in (tmp_path / "real_work_results").glob("*.json")]
    assert {r["details"]["worktree"]["port"] for r in every} == {repo.base_port + 1}
    # A person's worktree still gets the slot.
    assert repo.ok("worktree", "create", "mine")["slot"] == 1
