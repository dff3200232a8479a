"""One ``real_work_results/<work_item_id>.json`` per finished item, written atomically.

The agent writes it under ``.pending/<agent_id>/<work_item_id>.json`` before the store
records the outcome, and moves it into place once the store has accepted it; if the
store refuses (the lease was lost), the pending file is removed. So an agent that
loses its lease never touches the result of the agent that finished the item, and a
kill between the two steps leaves a pending file that ``reconcile`` (run by the
supervisor when an agent dies and when it starts) moves into place or removes,
according to the store. Ids may hold dots and be 128 characters long, so the two ids
are never joined in one file name: that made ``job.1`` and ``job.2`` one result file
and could pass the 255-byte name limit.

Schema (version 1)::

    {"schema": 1, "work_item_id", "work_type", "description", "priority", "team",
     "status": "completed" | "failed" | "dead", "attempts",
     "agent_id", "agent_group", "host", "backend", "model",
     "output": <text | {"argv", "cwd", "exit_code", "stdout", "stderr"} | JSON value>,
     "error": str | null, "tokens": {"input": int | null, "output": int | null},
     "started_at", "finished_at" (epoch s), "duration_s",
     "usage": null | {"model", "input_tokens", "output_tokens", "cost_usd",
                      "throttled_waits", "admission_wait_s"},   # metered (LLM) calls
     "details": {...}}
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import orjson

from orchestrator.errors import SwarmError
from orchestrator.files import write_atomic
from orchestrator.ids import check_id

if TYPE_CHECKING:
    from agents.backends import Outcome
    from orchestrator.records import WorkItem
    from orchestrator.store.base import Store

SCHEMA_VERSION = 1


def result_record(
    item: WorkItem,
    outcome: Outcome,
    *,
    agent_id: str,
    group: str,
    host: str,
    backend: str,
    started_at: float,
    finished_at: float,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "work_item_id": item.work_item_id,
        "work_type": item.work_type,
        "description": item.description,
        "priority": item.priority,
        "team": item.team,
        "status": item.status,
        "attempts": item.attempts,
        "agent_id": agent_id,
        "agent_group": group,
        "host": host,
        "backend": backend,
        "model": outcome.model,
        "output": outcome.output,
        "error": outcome.error,
        "tokens": {"input": outcome.input_tokens, "output": outcome.output_tokens},
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(finished_at - started_at, 6),
        "usage": outcome.details.get("usage"),
        "details": {k: v for k, v in outcome.details.items() if k != "usage"},
    }


PENDING = ".pending"


def write_pending(results_dir: str, record: dict[str, Any]) -> str:
    """Write the record as pending; ids are checked so they never name a path outside."""
    work_id = check_id(record["work_item_id"], "work id")
    agent_id = check_id(record["agent_id"], "agent id")
    folder = os.path.join(results_dir, PENDING, agent_id)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{work_id}.json")
    write_atomic(path, orjson.dumps(record, option=orjson.OPT_INDENT_2), fsync=False)
    return path


def finalize(pending: str) -> str:
    """Move a pending result into place: ``<results_dir>/<work_item_id>.json``."""
    folder = os.path.dirname(os.path.dirname(os.path.dirname(pending)))
    final = os.path.join(folder, os.path.basename(pending))
    os.replace(pending, final)
    return final


def reconcile(results_dir: str, store: Store, agent_id: str | None = None) -> int:
    """Settle the pending results left by killed agents (all, or one agent's): move in
    place those the store says that agent finished, remove the others."""
    root = os.path.join(results_dir, PENDING)
    try:
        owners = [agent_id] if agent_id is not None else os.listdir(root)
    except FileNotFoundError:
        return 0
    settled = 0
    for owner in owners:
        folder = os.path.join(root, owner)
        try:
            names = [n for n in os.listdir(folder) if n.endswith(".json")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            settled += _settle(os.path.join(folder, name), store, owner)
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # its agent is gone: nothing writes here any more
    return settled


def _settle(path: str, store: Store, owner: str) -> int:
    try:
        item = store.get(os.path.basename(path).removesuffix(".json"))
    except SwarmError:
        item = None
    if item is not None and item.terminal and item.agent_id == owner:
        if _status_of(path) == item.status:
            finalize(path)
            return 1
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return 1


def _status_of(path: str) -> object:
    try:
        with open(path, "rb") as fh:
            return orjson.loads(fh.read()).get("status")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None


def discard_result(path: str) -> None:
    """Remove a pending result whose outcome the store refused."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
