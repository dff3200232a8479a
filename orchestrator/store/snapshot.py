"""Records read back from the snapshot files (``work_claims.json``, ``agents.json``),
which people may edit with ``jq``: check what the indexes and file names rely on
before trusting them."""

from __future__ import annotations

from orchestrator.ids import check_id
from orchestrator.records import ALL_STATUSES, PRIORITIES, Agent, WorkItem
from orchestrator.store.state import check_key

_NUMBER = (int, float)


def checked_item(raw: object) -> WorkItem:
    """A work item from a snapshot file, which people may edit: check what the
    indexes and file names rely on."""
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    item = WorkItem.from_dict(raw)
    check_id(item.work_item_id, "work id")
    if item.priority not in PRIORITIES:
        raise ValueError(f"unknown priority {item.priority!r}")
    if item.status not in ALL_STATUSES:
        raise ValueError(f"unknown status {item.status!r}")
    if not isinstance(item.work_type, str) or not isinstance(item.description, str):
        raise TypeError("work_type and description must be strings")
    for name in ("created_at", "updated_at", "attempts", "max_attempts", "progress"):
        if not isinstance(getattr(item, name), _NUMBER) or isinstance(getattr(item, name), bool):
            raise TypeError(f"{name} must be a number")
    for name in ("claimed_at", "completed_at", "lease_expires_at"):
        value = getattr(item, name)
        if value is not None and not isinstance(value, _NUMBER):
            raise TypeError(f"{name} must be a number or null")
    if item.agent_id is not None:
        check_id(item.agent_id, "agent id")
    check_key(item.key)
    if item.parents is not None and not (
        isinstance(item.parents, list) and all(isinstance(p, str) for p in item.parents)
    ):
        raise TypeError("parents must be a list of work ids or null")
    return item


def checked_agent(raw: object) -> Agent:
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    agent = Agent.from_dict(raw)
    check_id(agent.agent_id, "agent id")
    for name in ("registered_at", "last_heartbeat"):
        if not isinstance(getattr(agent, name), _NUMBER):
            raise TypeError(f"{name} must be a number")
    return agent
