"""Call ``module:function`` (the group's ``function``) with the work item; whatever
JSON-able value it returns is the result, an exception fails the item."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from agents.backends import Outcome

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem


class PythonBackend:
    name = "python"

    def __init__(self, group: AgentGroup) -> None:
        if not group.function:
            raise ValueError(
                f"agent group {group.name}: backend python needs function = 'module:function'"
            )
        module_name, _, attr = group.function.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise ValueError(f"{group.function} is not callable")
        self.function: Callable[[WorkItem], Any] = target

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        try:
            result = self.function(item)
        except Exception as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")
        try:
            orjson.dumps(result)
        except TypeError as exc:
            return Outcome(False, error=f"the function's result is not JSON-able: {exc}")
        return Outcome(True, output=result)


def create(group: AgentGroup) -> PythonBackend:
    return PythonBackend(group)
