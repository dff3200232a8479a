"""What ``swarm worktree list`` and ``dashboard`` show of each worktree: the stored
record (state, branch, ports, database, the agent and item in it) and what git and the
disk say now (commits ahead of its base, uncommitted changes, disk use)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.errors import SwarmError
from orchestrator.store.base import Store
from orchestrator.worktrees import git, lifecycle
from orchestrator.worktrees.settings import WorktreeSettings


def disk_bytes(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue  # removed while we looked
    return total


def describe(
    settings: WorktreeSettings, tree: lifecycle.Worktree, detailed: bool
) -> dict[str, Any]:
    value = tree.value
    row: dict[str, Any] = {
        "feature": tree.feature,
        "state": tree.state,
        "branch": tree.branch,
        "base": tree.base,
        "path": str(tree.path),
        "ports": value.get("ports"),
        "database": value.get("database"),
        "agent": value.get("agent"),
        "item": value.get("item"),
        "exists": tree.path.is_dir(),
    }
    row["ahead"] = git.ahead(settings.repo, tree.base, tree.branch)
    try:
        row["uncommitted"] = git.dirty_count(tree.path) if row["exists"] else None
    except SwarmError:
        row["uncommitted"] = None  # a broken checkout
    if detailed:
        row["disk_bytes"] = disk_bytes(tree.path) if row["exists"] else 0
    return row


def overview(
    store: Store, settings: WorktreeSettings, detailed: bool = False
) -> list[dict[str, Any]]:
    return [describe(settings, tree, detailed) for tree in lifecycle.all_worktrees(store)]
