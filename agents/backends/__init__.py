"""Backends turn a work item into an outcome: command, python, ollama, claude.

Each lives in its own module and imports its SDK only when an agent that uses it
starts, so a command agent never pays for the Anthropic SDK's import.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem


@dataclass
class Outcome:
    """What a backend made of one item. ``output`` is text (LLMs), a command record
    (argv, exit_code, stdout, stderr) or any JSON value (python)."""

    ok: bool
    output: Any = None
    error: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        """Do the work; return early (ok=False) once ``cancel`` is set."""
        ...


_MODULES = {
    "command": "agents.backends.command",
    "python": "agents.backends.python",
    "ollama": "agents.backends.ollama",
    "claude": "agents.backends.claude",
}


def load_backend(group: AgentGroup) -> Backend:
    module = importlib.import_module(_MODULES[group.backend])
    backend: Backend = module.create(group)
    return backend


PLAN_INSTRUCTIONS = (
    "\n\nDo not do the task yourself: split it into sub-tasks. Answer with a JSON array"
    ' only, one object per sub-task: {"description": "…"}, optionally with "work_type",'
    ' "priority" (critical, high, medium or low), "key" (a short name) and "after" (keys'
    " of sub-tasks it must wait for)."
)


def system_prompt(group: AgentGroup) -> str:
    """The group's system prompt; a planning group (``plan = true``) also asks for a JSON
    list of sub-tasks (agents/pipeline.py validates and enqueues them)."""
    base = group.system_prompt or (
        f"You are a {group.role} agent specialised in {group.specialization}."
        " Do the work item you are given and answer with the result only."
    )
    return base + PLAN_INSTRUCTIONS if group.plan else base


def user_message(item: WorkItem) -> str:
    """The item as a prompt: the payload's ``prompt`` if any, else the description
    followed by the payload."""
    payload = item.payload
    if isinstance(payload, dict) and isinstance(payload.get("prompt"), str):
        return str(payload["prompt"])
    if payload is None:
        return item.description
    import orjson

    return f"{item.description}\n\n{orjson.dumps(payload).decode()}"
