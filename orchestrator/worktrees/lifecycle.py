"""A worktree's life, recorded in the store (namespace ``worktree``, key = feature):
creating -> configuring -> ready -> active (an agent works in it) -> destroying.

A create or remove whose process died on the way stays in its state with a dead
owner: it is shown as ``broken``, and ``remove --force`` finishes the job. A create
that fails (rather than dies) undoes what it did before reporting the error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from orchestrator.errors import Conflict, NotFound, SwarmError
from orchestrator.store.base import Store
from orchestrator.worktrees import alloc, envfile, git
from orchestrator.worktrees.settings import WorktreeSettings, check_feature

logger = logging.getLogger(__name__)

CREATING, CONFIGURING, READY, ACTIVE, DESTROYING, BROKEN = (
    "creating",
    "configuring",
    "ready",
    "active",
    "destroying",
    "broken",
)
TRANSIENT = (CREATING, CONFIGURING, DESTROYING)
STALE_AFTER_S = 600.0  # another host's create not heard of for this long is broken


def _owner() -> dict[str, Any]:
    me = psutil.Process()
    return {"pid": me.pid, "pid_started": me.create_time(), "host": socket.gethostname()}


def owner_alive(value: dict[str, Any], updated_at: float) -> bool:
    """Whether the process that set a transient state still runs (by pid and start
    time on this host; by age for another host)."""
    if value.get("host") != socket.gethostname():
        return time.time() - updated_at < STALE_AFTER_S
    try:
        proc = psutil.Process(int(value.get("pid", 0)))
        alive = proc.status() != psutil.STATUS_ZOMBIE
        return bool(alive and abs(proc.create_time() - float(value.get("pid_started", 0))) < 1)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def effective_state(value: dict[str, Any], updated_at: float) -> str:
    state = str(value.get("state", BROKEN))
    if state in TRANSIENT and not owner_alive(value, updated_at):
        return BROKEN
    return state


@dataclass
class Worktree:
    feature: str
    state: str
    value: dict[str, Any]

    @property
    def path(self) -> Path:
        return Path(self.value["path"])

    @property
    def branch(self) -> str:
        return str(self.value["branch"])

    @property
    def base(self) -> str:
        return str(self.value["base"])

    def env(self) -> dict[str, str]:
        return dict(self.value.get("env") or {})


def get(store: Store, feature: str) -> Worktree:
    check_feature(feature)
    try:
        record = store.get_record(alloc.WORKTREES, feature)
    except NotFound:
        raise NotFound(f"no worktree {feature} (swarm worktree list shows them)") from None
    return Worktree(feature, effective_state(record.value, record.updated_at), record.value)


def exists(store: Store, feature: str) -> bool:
    try:
        store.get_record(alloc.WORKTREES, feature)
    except NotFound:
        return False
    return True


def all_worktrees(store: Store) -> list[Worktree]:
    return [
        Worktree(r.key, effective_state(r.value, r.updated_at), r.value)
        for r in store.list_records(alloc.WORKTREES)
    ]


def update(store: Store, feature: str, value: dict[str, Any], **changes: Any) -> dict[str, Any]:
    value = value | changes
    store.update_record(alloc.WORKTREES, feature, value)
    return value


# -- create ----------------------------------------------------------------------------


def create(
    store: Store,
    settings: WorktreeSettings,
    feature: str,
    base: str | None = None,
    branch: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Worktree:
    """A new worktree on ``branch`` (a new branch from ``base``, or the branch as it is
    when it exists already), with its ports, database and .env."""
    check_feature(feature)
    repo = settings.repo
    branch = branch or f"{settings.branch_prefix}{feature}"
    base = base or git.current_branch(repo)
    if not git.has_ref(repo, base):
        raise NotFound(f"base {base!r} is not a branch or commit of {repo}")
    path = settings.path_of(feature)
    value: dict[str, Any] = {
        "state": CREATING,
        "branch": branch,
        "base": base,
        "path": str(path),
        **_owner(),
        **(extra or {}),
    }
    try:
        store.claim_record(alloc.WORKTREES, feature, value)
    except Conflict:
        raise Conflict(
            f"worktree {feature} exists ({get(store, feature).state}):"
            f" use it, or swarm worktree remove {feature}"
        ) from None
    if path.exists():  # not ours: leave it, and the name, as they are
        store.drop_record(alloc.WORKTREES, feature)
        raise Conflict(f"{path} already exists: move it away or choose another feature name")
    try:
        return _build(store, settings, feature, value)
    except BaseException:
        _undo(store, settings, feature, value)
        raise


def _build(
    store: Store, settings: WorktreeSettings, feature: str, value: dict[str, Any]
) -> Worktree:
    repo, path, branch = settings.repo, Path(value["path"]), value["branch"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with git.worktree_admin(repo):
        if git.has_ref(repo, f"refs/heads/{branch}"):
            git.git(repo, "worktree", "add", str(path), branch)
        else:
            git.git(repo, "worktree", "add", "-b", branch, str(path), value["base"])
    value = update(store, feature, value, state=CONFIGURING, created_path=True)
    database = alloc.claim_database(store, settings.project, feature)
    value = update(store, feature, value, database=database)
    if settings.database_dsn:
        # "pending" until it is known: a create killed in between drops it on remove.
        value = update(store, feature, value, database_created="pending")
        try:
            alloc.create_database(settings.database_dsn, database)
        except SwarmError:  # not made (or someone else's): never ours to drop
            update(store, feature, value, database_created=False)
            raise
        value = update(store, feature, value, database_created=True)
    envfile.exclude(repo)
    value = give_ports(store, settings, feature, value)
    value = update(store, feature, value, state=READY)
    logger.info("worktree %s ready at %s (port %d)", feature, path, value["ports"]["app"])
    return Worktree(feature, READY, value)


def give_ports(
    store: Store, settings: WorktreeSettings, feature: str, value: dict[str, Any]
) -> dict[str, Any]:
    """Claim a slot for the worktree and write its .env."""
    slot, ports = alloc.claim_slot(store, settings, feature)
    value = update(store, feature, value, slot=slot, ports=ports.as_dict())
    env = envfile.variables(settings, feature, ports, value.get("database"))
    envfile.write(Path(value["path"]), env)
    return update(store, feature, value, env=env)


def free_ports(store: Store, feature: str, value: dict[str, Any]) -> dict[str, Any]:
    """Give the worktree's slot back (an agent's worktree between items: a swarm may
    keep many more worktrees than there are ports to give)."""
    for slot in alloc.held_by(store, alloc.SLOTS, feature):
        alloc.release(store, alloc.SLOTS, slot, feature)
    return update(store, feature, value, slot=None, ports=None)


def _undo(store: Store, settings: WorktreeSettings, feature: str, value: dict[str, Any]) -> None:
    """Best effort: leave nothing of a failed create behind (what cannot be undone is
    logged; the record then stays, shown as broken)."""
    try:
        _teardown(store, settings, feature, value, force=True)
    except (SwarmError, OSError) as exc:
        logger.warning("could not undo the failed create of worktree %s: %s", feature, exc)


# -- remove ----------------------------------------------------------------------------


def remove(store: Store, settings: WorktreeSettings, feature: str, force: bool = False) -> Worktree:
    """Free the worktree's ports and database, remove its checkout (its branch stays)."""
    tree = get(store, feature)
    if not force:
        if tree.state == BROKEN:
            raise Conflict(
                f"worktree {feature} is broken (its create or remove was interrupted):"
                f" clean it up with swarm worktree remove {feature} --force"
            )
        if tree.state in (CREATING, CONFIGURING, DESTROYING, ACTIVE):
            who = tree.value.get("agent") or f"pid {tree.value.get('pid')}"
            raise Conflict(f"worktree {feature} is {tree.state} ({who}): wait, or use --force")
        if tree.path.exists() and (dirty := git.dirty_count(tree.path)):
            raise Conflict(
                f"worktree {feature} has {dirty} uncommitted change(s): merge or commit"
                " them, or use --force to discard them"
            )
    value = update(store, feature, tree.value, state=DESTROYING, **_owner())
    _teardown(store, settings, feature, value, force)
    return Worktree(feature, DESTROYING, value)


def _teardown(
    store: Store, settings: WorktreeSettings, feature: str, value: dict[str, Any], force: bool
) -> None:
    with contextlib.suppress(NotFound):
        value = store.get_record(alloc.WORKTREES, feature).value  # the latest word
    repo, path = settings.repo, Path(value["path"])
    if settings.database_dsn and value.get("database_created"):
        for name in alloc.held_by(store, alloc.DATABASES, feature):
            alloc.drop_database(settings.database_dsn, name)
    with git.worktree_admin(repo):
        if path.exists() and path.resolve() in git.worktree_paths(repo):
            flags = ["--force", "--force"] if force else []  # twice: also a locked one
            done = git.git(repo, "worktree", "remove", *flags, str(path), check=False)
            if done.returncode != 0:
                if not force:
                    raise git.GitError(
                        f"git worktree remove failed: {git.first_error(done.stderr)}"
                    )
                shutil.rmtree(path, ignore_errors=True)  # git's record goes with the prune
        git.git(repo, "worktree", "prune", check=False)
    for name in alloc.held_by(store, alloc.DATABASES, feature):
        alloc.release(store, alloc.DATABASES, name, feature)
    for slot in alloc.held_by(store, alloc.SLOTS, feature):
        alloc.release(store, alloc.SLOTS, slot, feature)
    with contextlib.suppress(NotFound):
        store.drop_record(alloc.WORKTREES, feature)
    with contextlib.suppress(OSError):
        if settings.dir.is_dir() and not any(settings.dir.iterdir()):
            os.rmdir(settings.dir)
