"""The ``git`` command, as users run it. Many agents share one repository: git's own
lock files (``index.lock``, ``config.lock``, a ref's lock) taken by another process
at the same moment are waited out and retried, not reported as failures."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import NotFound, SwarmError

logger = logging.getLogger(__name__)

# What git prints when another git process holds a lock it needs for a moment.
_CONTENTION = re.compile(
    r"Unable to create '[^']*\.lock'|could not lock config file|\.lock': File exists",
    re.IGNORECASE,
)
RETRY_FOR_S = 30.0


class GitError(SwarmError):
    """A git command failed."""


def git(
    cwd: str | os.PathLike[str],
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``git -C cwd args``; GitError naming the command and git's own first error
    line when it fails (``check``), after retrying lock contention for RETRY_FOR_S."""
    argv = ["git", "-C", os.fspath(cwd), *args]
    full_env = os.environ | {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"} | (env or {})
    started = time.monotonic()
    delay = 0.02
    while True:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, env=full_env, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise NotFound("git is not installed (install git 2.38 or later)") from None
        contended = done.returncode != 0 and _CONTENTION.search(done.stderr)
        if not contended or time.monotonic() - started > RETRY_FOR_S:
            break
        logger.debug("git %s: lock held by another process; retrying", args[0])
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.5)
    if check and done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {first_error(done.stderr)}")
    return done


def out(cwd: str | os.PathLike[str], *args: str) -> str:
    return git(cwd, *args).stdout.strip()


def first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip()
    return lines[0] if lines else "no message"


def main_checkout(start: str | os.PathLike[str]) -> Path:
    """The repository's main checkout (not a linked worktree) for a folder inside it."""
    done = git(start, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
    if done.returncode != 0:
        raise NotFound(
            f"{start} is not in a git repository (run inside one, or set [worktrees] repo)"
        )
    common = Path(done.stdout.strip())
    if out(common, "rev-parse", "--is-bare-repository") == "true":
        return common
    return common.parent


def common_dir(repo: Path) -> Path:
    return Path(out(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))


def current_branch(repo: Path) -> str:
    """The branch checked out in ``repo``, or its commit when the HEAD is detached."""
    done = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return done.stdout.strip() if done.returncode == 0 else out(repo, "rev-parse", "HEAD")


def has_ref(repo: Path, ref: str) -> bool:
    return (
        git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode
        == 0
    )


def dirty_count(path: Path) -> int:
    """Uncommitted changes (files) in a checkout."""
    return len(git(path, "status", "--porcelain").stdout.splitlines())


def ahead(repo: Path, base: str, branch: str) -> int:
    done = git(repo, "rev-list", "--count", f"{base}..{branch}", check=False)
    return int(done.stdout.strip()) if done.returncode == 0 else 0


def worktree_paths(repo: Path) -> set[Path]:
    """The checkouts git knows for ``repo`` (the main one included)."""
    listing = out(repo, "worktree", "list", "--porcelain")
    return {
        Path(line.removeprefix("worktree ")).resolve()
        for line in listing.splitlines()
        if line.startswith("worktree ")
    }


@contextlib.contextmanager
def worktree_admin(repo: Path) -> Iterator[None]:
    """Hold while adding, removing or pruning worktrees: git writes a new worktree's
    bookkeeping (``.git/worktrees/<name>/``) in several steps, and another
    ``git worktree`` command reading it half-written fails. An flock on a file of our
    own in the common git folder lets one such command run at a time."""
    fd = os.open(common_dir(repo) / "swarm-worktrees.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
