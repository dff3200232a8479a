"""One ``real_work_results/<work_item_id>.json`` per finished item, written atomically.

The agent writes it just before the store records the outcome; if the store refuses
(the lease was lost), the file is removed again.

Schema (version 1)::

    {"schema": 1, "work_item_id", "work_type", "description", "priority", "team",
     "status": "completed" | "failed" | "dead", "attempts",
     "agent_id", "agent_group", "host", "backend", "model",
     "output": <text | {"argv", "cwd", "exit_code", "stdout", "stderr"} | JSON value>,
     "error": str | null, "tokens": {"input": int | null, "output": int | null},
     "started_at", "finished_at" (epoch s), "duration_s", "details": {...}}
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson

from orchestrator.ids import check_id
from orchestrator.store.journal import write_atomic

if TYPE_CHECKING:
    from agents.backends import Outcome
    from orchestrator.store.base import WorkItem

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
        "details": outcome.details,
    }


def write_result(results_dir: str, record: dict[str, Any]) -> str:
    """Write the record; the id is checked so it can never name a path outside."""
    work_id = check_id(record["work_item_id"], "work id")
    path = os.path.join(results_dir, f"{work_id}.json")
    write_atomic(path, orjson.dumps(record, option=orjson.OPT_INDENT_2), fsync=False)
    return path


def discard_result(path: str, agent_id: str) -> None:
    """Remove a result file written ahead of a completion the store refused, unless
    another agent has rewritten it since."""
    try:
        with open(path, "rb") as fh:
            if orjson.loads(fh.read()).get("agent_id") == agent_id:
                os.unlink(path)
    except (OSError, orjson.JSONDecodeError):
        pass
