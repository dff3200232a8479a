"""Agents that work in git worktrees: a group with ``worktree = "per-item"`` runs each
item in a worktree of its own (branch ``swarm/<work id>`` from the group's ``base``),
``"per-agent"`` all of an agent's items in one (``swarm/<agent id>``).

The backend runs with the worktree as its working directory and the worktree's ports
and database in its environment (the ``command`` backend takes both from the payload).
A success is committed, author ``swarm agent <agent id>``; the result file's
``details.worktree`` records the branch, the commit and the diff's stat. A failure
leaves its branch and worktree as they are, for inspection (a retry works on in it);
``keep = false`` removes a clean worktree once its work is committed. A worktree holds
its ports only while an item runs in it, so a swarm may leave more worktrees behind
than there are port slots.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from agents.backends import Backend, Outcome
from orchestrator.errors import Conflict, NotFound, SwarmError
from orchestrator.worktrees import git, lifecycle

if TYPE_CHECKING:
    from agents.loop import AgentSpec
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem
    from orchestrator.store.base import Store
    from orchestrator.worktrees.settings import WorktreeSettings

logger = logging.getLogger(__name__)


def in_worktrees(backend: Backend, spec: AgentSpec, store: Store) -> Backend:
    """``backend``, run inside worktrees when the agent's group asks for it."""
    if spec.group.worktree is None or spec.worktrees is None:
        return backend
    return InWorktree(backend, spec.group, store, spec.worktrees, spec.agent_id)


class InWorktree:
    def __init__(
        self,
        inner: Backend,
        group: AgentGroup,
        store: Store,
        settings: WorktreeSettings,
        agent_id: str,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.group = group
        self.store = store
        self.settings = settings
        self.agent_id = agent_id

    # The wrapped backend's face to the agent loop and spans (model, host) and its 429
    # hook, which the swarm's limits set (agents/metering.py): the inner backend's own.
    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def throttle(self) -> Any:
        return self.inner.throttle  # type: ignore[attr-defined]

    @throttle.setter
    def throttle(self, hook: Any) -> None:
        self.inner.throttle = hook  # type: ignore[attr-defined]

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        per_item = self.group.worktree == "per-item"
        feature = item.work_item_id if per_item else self.agent_id
        try:
            tree = self._worktree(feature)
            if not tree.value.get("ports"):
                tree.value = lifecycle.give_ports(self.store, self.settings, feature, tree.value)
            tree.value = lifecycle.update(
                self.store,
                feature,
                tree.value,
                state=lifecycle.ACTIVE,
                agent=self.agent_id,
                item=item.work_item_id,
            )
        except SwarmError as exc:
            return Outcome(False, error=f"cannot prepare worktree {feature}: {exc.message}")
        if self.inner.name == "command":  # an LLM's prompt must not get paths and ports
            item = item.evolve(payload=self._payload(item, tree))
        try:
            outcome = self.inner.run(item, cancel)
        except Exception:  # a backend bug: the loop reports it; the worktree is freed
            self._settle(feature, tree, clean=False)
            raise
        info: dict[str, Any] = {
            "feature": feature,
            "branch": tree.branch,
            "path": str(tree.path),
            "port": tree.value["ports"]["app"],
        }
        outcome.details["worktree"] = info
        try:
            if outcome.ok:
                info.update(self._commit(tree, item))
            self._settle(feature, tree, clean=outcome.ok)
        except SwarmError as exc:
            outcome.ok = False
            outcome.error = f"worktree {feature}: {exc.message}"
        return outcome

    def _worktree(self, feature: str) -> lifecycle.Worktree:
        """The worktree to work in: made now, or the one a previous item or attempt left."""
        branch = f"swarm/{feature}"
        for _ in range(3):
            try:
                tree = lifecycle.get(self.store, feature)
            except NotFound:
                try:
                    return lifecycle.create(
                        self.store,
                        self.settings,
                        feature,
                        self.group.base,
                        branch,
                        {"agent": self.agent_id},
                    )
                except Conflict:
                    if not lifecycle.exists(self.store, feature):
                        raise  # not a worktree made meanwhile: its folder is in the way
                    continue  # made by another at this moment: look again
            if tree.state == lifecycle.BROKEN:
                logger.warning("worktree %s was left broken; making it again", feature)
                lifecycle.remove(self.store, self.settings, feature, force=True)
                continue
            if tree.state in (lifecycle.READY, lifecycle.ACTIVE) and tree.path.is_dir():
                return tree  # ACTIVE: its agent died; this item's claim is ours now
            raise Conflict(f"worktree {feature} is {tree.state}")
        raise Conflict(f"worktree {feature} keeps changing under this agent")

    @staticmethod
    def _payload(item: WorkItem, tree: lifecycle.Worktree) -> dict[str, Any]:
        payload = dict(item.payload) if isinstance(item.payload, dict) else {}
        env = {**tree.env(), **(payload.get("env") or {})}
        return payload | {"cwd": str(tree.path), "env": env}

    def _commit(self, tree: lifecycle.Worktree, item: WorkItem) -> dict[str, Any]:
        path = tree.path
        git.git(path, "add", "-A")
        if git.git(path, "diff", "--cached", "--quiet", check=False).returncode == 0:
            return {"commit": None, "diff_stat": ""}  # the work changed no file
        identity = {"GIT_COMMITTER_NAME": "swarm agent", "GIT_COMMITTER_EMAIL": self.agent_id}
        message = f"{item.work_type}: {item.description}\n\nWork item {item.work_item_id}."
        git.git(
            path,
            "commit",
            "-q",
            "--no-verify",
            f"--author=swarm agent <{self.agent_id}>",
            "-m",
            message,
            env=identity,
        )
        return {
            "commit": git.out(path, "rev-parse", "HEAD"),
            "diff_stat": git.out(path, "show", "--stat", "--format=", "HEAD"),
        }

    def _settle(self, feature: str, tree: lifecycle.Worktree, clean: bool) -> None:
        """Back to ready for the next item; or gone, when it may not be kept."""
        if clean and not self.group.keep and not git.dirty_count(tree.path):
            lifecycle.remove(self.store, self.settings, feature, force=True)
            return
        value = lifecycle.free_ports(self.store, feature, tree.value)
        lifecycle.update(self.store, feature, value, state=lifecycle.READY, item=None)
