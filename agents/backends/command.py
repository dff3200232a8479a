"""Run a command: the item's payload gives ``argv`` (a list; a string only when the
group sets ``shell = true``), and optionally ``cwd``, ``env`` and ``timeout_s``."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from agents.backends import Outcome

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem

OUTPUT_LIMIT = 64 * 1024
# What a command sees of the agent's environment, besides the names its group's ``env``
# allows (a trailing ``*`` matches a prefix) and the item's ``payload.env``; a group with
# ``inherit_env = true`` passes everything. Keys and tokens stay with the agent.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_*", "TZ", "TMPDIR", "USER", "LOGNAME", "SWARM_AGENT_ID")


def _allowed(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def command_env(group: AgentGroup, payload_env: dict[str, Any] | None) -> dict[str, str]:
    """The environment of a command item's process."""
    if group.inherit_env:
        env = dict(os.environ)
    else:
        allowed = BASE_ENV + tuple(group.env)
        env = {k: v for k, v in os.environ.items() if _allowed(k, allowed)}
    env.update({str(k): str(v) for k, v in (payload_env or {}).items()})
    return env


def _text(data: bytes) -> str:
    text = data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
    return text + ("\n[… output truncated]" if len(data) > OUTPUT_LIMIT else "")


class CommandBackend:
    name = "command"

    def __init__(self, group: AgentGroup) -> None:
        self.group = group
        self.shell = group.shell
        self.timeout_s = group.timeout_s

    def _argv(self, payload: dict[str, Any]) -> list[str] | str:
        argv = payload.get("argv")
        if isinstance(argv, str):
            if not self.shell:
                raise ValueError(
                    "payload argv is a string but this agent group does not set shell = true;"
                    " give a list of arguments"
                )
            return argv
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("payload needs argv: a non-empty list of strings")
        return argv

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        payload = item.payload if isinstance(item.payload, dict) else {}
        try:
            argv = self._argv(payload)
        except ValueError as exc:
            return Outcome(False, error=str(exc))
        env = command_env(self.group, payload.get("env"))
        env["SWARM_WORK_ITEM_ID"] = item.work_item_id
        timeout = float(payload.get("timeout_s") or self.timeout_s)
        record: dict[str, Any] = {"argv": argv, "cwd": payload.get("cwd")}
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                shell=isinstance(argv, str),
                cwd=payload.get("cwd"),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Its own process group, so a timeout or a cancel kills everything it
                # started. If the agent itself dies, the supervisor (a subreaper) finds the
                # orphans by SWARM_AGENT_ID in their environment. No preexec_fn: it would
                # cost a slow fork instead of vfork (~2 ms per command).
                start_new_session=True,
            )
        except OSError as exc:
            cwd = payload.get("cwd")
            if cwd is not None and not os.path.isdir(cwd):  # else the error names the program
                error = f"cannot run {argv!r}: payload.cwd {cwd!r} is not a folder"
                return Outcome(False, output=record, error=error)
            return Outcome(False, output=record, error=f"cannot run {argv!r}: {exc.strerror}")
        reason = None
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set():
                    reason = "cancelled: the agent is stopping"
                elif time.monotonic() - started > timeout:
                    reason = f"timed out after {timeout:g}s"
                if reason:
                    os.killpg(proc.pid, signal.SIGKILL)
                    out, err = proc.communicate()
                    break
        record.update(exit_code=proc.returncode, stdout=_text(out), stderr=_text(err))
        if reason:
            return Outcome(False, output=record, error=reason)
        if proc.returncode != 0:
            detail = record["stderr"].strip().splitlines()[-1:] or [""]
            return Outcome(
                False, output=record, error=f"exit code {proc.returncode}: {detail[0][:200]}"
            )
        return Outcome(True, output=record)


def create(group: AgentGroup) -> CommandBackend:
    return CommandBackend(group)
