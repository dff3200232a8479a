"""The cost ledger read back: totals by group, model, agent or day (``swarm cost``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from orchestrator.errors import InvalidArgument

GROUPINGS = ("group", "model", "agent", "day")


def cost_report(
    entries: Iterable[dict[str, Any]], by: str = "group", window_s: float | None = None
) -> dict[str, Any]:
    """Rows of calls, tokens, cost and throttled waits per ``by`` value, and the total."""
    if by not in GROUPINGS:
        raise InvalidArgument(f"--by {by!r}: use one of {', '.join(GROUPINGS)}")
    since = time.time() - window_s if window_s is not None else 0.0
    rows: dict[str, dict[str, Any]] = {}
    total = _row("total")
    for entry in entries:
        if float(entry.get("ts", 0.0)) < since:
            continue
        key = _key(entry, by)
        row = rows.setdefault(key, _row(key))
        for target in (row, total):
            target["calls"] += 1
            target["input_tokens"] += int(entry.get("input_tokens") or 0)
            target["output_tokens"] += int(entry.get("output_tokens") or 0)
            target["cost_usd"] += float(entry.get("cost_usd") or 0.0)
            target["throttled_waits"] += int(entry.get("throttled_waits") or 0)
    ordered = sorted(rows.values(), key=lambda r: (-r["cost_usd"], r["key"]))
    for row in (*ordered, total):
        row["cost_usd"] = round(row["cost_usd"], 6)
        row[by] = row.pop("key")
    return {"by": by, "rows": ordered, "total": total}


def _row(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "throttled_waits": 0,
    }


def _key(entry: dict[str, Any], by: str) -> str:
    if by == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(float(entry.get("ts", 0.0))))
    field = {"group": "group", "model": "model", "agent": "agent_id"}[by]
    return str(entry.get(field) or "-")
