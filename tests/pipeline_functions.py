"""Functions the python backend calls in the pipeline tests (importable by agents)."""

from __future__ import annotations

from typing import Any

from orchestrator.records import WorkItem


def split(item: WorkItem) -> Any:
    """A planner: three parts and a join, or the part's own echo once it is a child."""
    if item.work_type == "part":
        return f"part {item.payload['n']} of {item.description}"
    if item.work_type == "join":
        return item.description  # its parents' outputs, filled in by the agent
    return {
        "enqueue": [
            {"description": "x", "work_type": "part", "key": f"p{n}", "payload": {"n": n}}
            for n in range(3)
        ],
        "join": {
            "description": "{parents.p0.output} | {parents.p1.output} | {parents.p2.output}",
            "work_type": "join",
        },
    }


def bad_enqueue(item: WorkItem) -> Any:
    return {"enqueue": [{"description": ""}]}
