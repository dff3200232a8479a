"""``swarm worktree merge``: commit what is uncommitted, check the branch merges
cleanly into its base, push it to ``origin`` when there is one, and say how to open
the pull request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.errors import Conflict, SwarmError
from orchestrator.store.base import Store
from orchestrator.worktrees import git, lifecycle
from orchestrator.worktrees.settings import WorktreeSettings


class NothingToMerge(SwarmError):
    """Nothing to merge."""


@dataclass
class Merged:
    feature: str
    branch: str
    base: str
    committed: str | None  # the commit made of uncommitted changes, if any
    ahead: int
    pushed_to: str | None  # origin's URL when pushed
    pull_request: str  # how to open it


def merge(
    store: Store, settings: WorktreeSettings, feature: str, message: str | None = None
) -> Merged:
    tree = lifecycle.get(store, feature)
    if tree.state == lifecycle.BROKEN:
        raise Conflict(
            f"worktree {feature} is broken: remove it with swarm worktree remove {feature} --force"
        )
    repo, path, branch, base = settings.repo, tree.path, tree.branch, tree.base
    committed = None
    if git.dirty_count(path):
        git.git(path, "add", "-A")
        git.git(path, "commit", "-q", "-m", message or f"{feature}: work in progress")
        committed = git.out(path, "rev-parse", "HEAD")
    ahead = git.ahead(repo, base, branch)
    if not ahead:
        raise NothingToMerge(f"nothing to merge: {branch} has no commit that {base} lacks")
    check = git.git(repo, "merge-tree", "--write-tree", "--name-only", base, branch, check=False)
    if check.returncode == 1:
        files = [line for line in check.stdout.splitlines()[1:] if line and " " not in line]
        raise Conflict(
            f"{branch} conflicts with {base} in {', '.join(files[:5]) or 'some files'}:"
            f" merge {base} into it in {path} and resolve, then run merge again"
        )
    if check.returncode != 0:
        raise git.GitError(f"git merge-tree failed: {git.first_error(check.stderr)}")
    origin = git.git(repo, "remote", "get-url", "origin", check=False)
    pushed_to = None
    if origin.returncode == 0:
        pushed_to = origin.stdout.strip()
        git.git(repo, "push", "-q", "-u", "origin", f"{branch}:{branch}")
    return Merged(
        feature, branch, base, committed, ahead, pushed_to, _pull_request(pushed_to, branch, base)
    )


def _pull_request(url: str | None, branch: str, base: str) -> str:
    if url is None:
        return (
            f"no origin remote: add one (git remote add origin URL) and run merge again,"
            f" or merge locally: git merge {branch}"
        )
    found = re.match(r"^(?:https://|git@)(github\.com|gitlab\.com)[:/](.+?)(?:\.git)?/?$", url)
    if found and found.group(1) == "github.com":
        return f"open https://github.com/{found.group(2)}/compare/{base}...{branch}?expand=1"
    if found:
        return (
            f"open https://gitlab.com/{found.group(2)}/-/merge_requests/new"
            f"?merge_request[source_branch]={branch}&merge_request[target_branch]={base}"
        )
    return f"open a pull request from {branch} into {base} on {url}"
