"""Checking what a person asks to enqueue, for every way in (the CLI, the HTTP API):
one place for the rules and their one-line messages."""

from __future__ import annotations

from typing import Any

import orjson

from orchestrator.errors import InvalidArgument
from orchestrator.ids import new_work_id
from orchestrator.records import PRIORITIES, WorkItem


def payload_of(raw: str | None, what: str = "--payload") -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None


def choice(value: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def new_item(
    work_type: str,
    description: str,
    priority: str,
    team: str | None,
    payload: str | None = None,
    key: str | None = None,
    parents: list[str] | None = None,
    *,
    parsed_payload: Any = None,
) -> WorkItem:
    """A new pending item; ``payload`` is JSON text (the CLI), ``parsed_payload`` a value
    already decoded (the HTTP API's body)."""
    choice(priority, list(PRIORITIES), "priority")
    return WorkItem(
        work_item_id=new_work_id(),
        work_type=work_type,
        description=description,
        priority=priority,
        team=team,
        payload=payload_of(payload) if payload is not None else parsed_payload,
        key=key,
        parents=parents,
    )
