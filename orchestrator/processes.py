"""Process-tree chores of the supervisor: adopting orphans, killing what agents leave."""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import psutil

from orchestrator.slots import Slot

logger = logging.getLogger("orchestrator.supervisor")

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants come to us instead of init, so none escapes a stop."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_CHILD_SUBREAPER) unavailable; orphans go to init")


def kill_orphans(agent_id: str | None = None) -> None:
    """Commands whose agent died are re-parented to us (a subreaper): kill those of
    ``agent_id`` (every agent's when None), and reap the ones that ended by themselves.
    They carry SWARM_AGENT_ID in their environment, the forkserver does not."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)  # an adopted orphan that exited
                continue
            owner = child.environ().get("SWARM_AGENT_ID")
            if owner is None or (agent_id is not None and owner != agent_id):
                continue
            for proc in [*child.children(recursive=True), child]:
                proc.kill()
            child.wait(timeout=2)
        except (psutil.Error, psutil.TimeoutExpired, ChildProcessError):
            continue


def signal_agent(slot: Slot, signum: int) -> None:
    if slot.pid is None:
        return  # never kill(-1): that would signal every process of the user
    try:
        os.kill(slot.pid, signum)
    except ProcessLookupError:
        pass


def kill_tree(slot: Slot) -> None:
    """SIGKILL the agent and everything it started, and wait for the agent."""
    procs: list[psutil.Process] = []
    if slot.ps is not None:
        try:
            procs = [*slot.ps.children(recursive=True), slot.ps]
        except psutil.Error:
            procs = [slot.ps]
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass  # already gone
    if slot.process is not None:
        slot.process.join(5)


def redirect_output(path: Path) -> None:
    """Point this process's stdout and stderr (and its agents', inherited) at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)
