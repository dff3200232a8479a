"""``[worktrees]`` of swarm.toml, and the same resolved to paths for one repository."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from orchestrator.errors import InvalidArgument
from orchestrator.sections import Section
from orchestrator.worktrees import git

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

FEATURE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class WorktreesConfig(Section):
    """``[worktrees]``: where worktrees go and what they are given. Paths are relative
    to swarm.toml's folder."""

    repo: str = "."  # any folder inside the repository
    dir: str | None = None  # default: <repository>-worktrees beside the repository
    base_port: int = Field(default=4000, ge=1, le=65535 - 2000 - 64)
    max_worktrees: int = Field(default=64, ge=1, le=1000)
    project: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,40}$")
    database_dsn: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    branch_prefix: str = Field(default="feature/", pattern=r"^[A-Za-z0-9_./-]*$")


@dataclass(frozen=True)
class WorktreeSettings:
    """Resolved settings: picklable, handed to agent processes."""

    repo: Path  # the main checkout
    dir: Path
    base_port: int
    max_worktrees: int
    project: str
    database_dsn: str | None
    branch_prefix: str
    store_target: str  # what SWARM_STORE says in every worktree's .env

    def path_of(self, feature: str) -> Path:
        return self.dir / feature


def resolve(config: WorktreesConfig | None, base_dir: Path, store_target: str) -> WorktreeSettings:
    config = config or WorktreesConfig()
    repo = git.main_checkout(base_dir / os.path.expanduser(config.repo))
    if config.dir:
        folder = (base_dir / os.path.expanduser(config.dir)).resolve()
    else:
        folder = repo.parent / f"{repo.name}-worktrees"
    common = git.common_dir(repo)
    if folder == common or folder.is_relative_to(common):
        raise InvalidArgument(
            f"[worktrees] dir {folder} is inside {common}, git's own bookkeeping:"
            " choose a folder outside .git"
        )
    project = config.project or re.sub(r"[^a-z0-9_]", "_", repo.name.lower())[:40] or "swarm"
    return WorktreeSettings(
        repo=repo,
        dir=folder,
        base_port=config.base_port,
        max_worktrees=config.max_worktrees,
        project=project,
        database_dsn=config.database_dsn,
        branch_prefix=config.branch_prefix,
        store_target=store_target,
    )


def check_feature(feature: str) -> str:
    if not FEATURE_RE.match(feature) or ".." in feature or feature.endswith((".lock", ".")):
        raise InvalidArgument(
            f"feature name {feature!r}: use up to 63 letters, digits, '.', '_' and '-',"
            " starting with a letter or digit"
        )
    return feature


def for_agents(config: SwarmConfig, store_target: str) -> WorktreeSettings | None:
    """The settings agent groups with ``worktree = …`` work with (None when no group
    does); a repository that is not there is reported before any agent starts."""
    if not any(group.worktree and group.count for group in config.agents):
        return None
    return resolve(config.worktrees, config.base_dir, store_target)
