"""Work items as the graph their parents make: the text tree of ``swarm list-work
--tree`` and the Mermaid flowchart of ``swarm diagram work``. Plain text out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.records import WorkItem

GRAPH_NODES_MAX = 300  # a Mermaid graph larger than this is unreadable and slow to draw
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

# Mermaid classes by status: done green, gave up red, waiting grey, running blue.
_CLASSES = {
    "completed": "fill:#c8e6c9,stroke:#2e7d32",
    "failed": "fill:#ffcdd2,stroke:#c62828",
    "dead": "fill:#ffcdd2,stroke:#c62828",
    "cancelled": "fill:#eeeeee,stroke:#757575,stroke-dasharray:3 3",
    "blocked": "fill:#f5f5f5,stroke:#9e9e9e",
    "pending": "fill:#fff9c4,stroke:#f9a825",
    "claimed": "fill:#bbdefb,stroke:#1565c0",
    "in_progress": "fill:#bbdefb,stroke:#1565c0",
}


def children_of(items: Sequence[WorkItem]) -> dict[str, list[str]]:
    """Parent id -> ids of the listed items that name it, in the order listed."""
    children: dict[str, list[str]] = {}
    for item in items:
        for parent in item.parents or ():
            children.setdefault(parent, []).append(item.work_item_id)
    return children


def _line(item: WorkItem) -> str:
    name = item.key or item.description
    holder = f" by {item.agent_id}" if item.held else ""
    why = f" ({item.error})" if item.error and item.status in ("cancelled", "dead") else ""
    return f"{item.work_item_id} [{item.status}{holder}] {item.work_type}: {name}{why}"


def tree(items: Sequence[WorkItem]) -> list[str]:
    """The items as trees from their roots (items none of whose parents is listed). An
    item with several parents is drawn under the first; later parents say where it is."""
    by_id = {item.work_item_id: item for item in items}
    children = children_of(items)
    lines: list[str] = []
    drawn: set[str] = set()

    def draw(work_id: str, prefix: str, last: bool, depth: int) -> None:
        item = by_id[work_id]
        branch = "" if depth == 0 else ("└─ " if last else "├─ ")
        if work_id in drawn:
            lines.append(f"{prefix}{branch}{work_id} (also under another parent, above)")
            return
        drawn.add(work_id)
        lines.append(f"{prefix}{branch}{_line(item)}")
        kids = children.get(work_id, [])
        below = prefix + ("" if depth == 0 else ("   " if last else "│  "))
        for n, kid in enumerate(kids):
            draw(kid, below, n == len(kids) - 1, depth + 1)

    for item in items:
        if not any(p in by_id for p in item.parents or ()):
            draw(item.work_item_id, "", True, 0)
    for item in items:  # parents listed but never reached: a cycle cannot be stored, so none
        if item.work_item_id not in drawn:
            draw(item.work_item_id, "", True, 0)
    return lines


def _node(work_id: str) -> str:
    clean = _UNSAFE.sub("_", work_id)
    return clean if clean[:1].isalpha() else f"n_{clean}"


def _label(text: Any) -> str:
    return str(text).replace('"', "'").replace("\n", " ").replace("#", "").replace(";", ",")


def mermaid(items: Sequence[WorkItem]) -> str:
    """A flowchart of the items that have parents or children, each with its status;
    the newest ``GRAPH_NODES_MAX`` of them when there are more."""
    children = children_of(items)
    linked = [i for i in items if i.parents or i.work_item_id in children]
    linked = sorted(linked, key=lambda i: (i.created_at, i.work_item_id))[-GRAPH_NODES_MAX:]
    shown = {item.work_item_id for item in linked}
    lines = ["flowchart TD"]
    for item in linked:
        name = _label(item.key or item.description)[:60]
        lines.append(
            f'    {_node(item.work_item_id)}["{name}<br/>{_label(item.work_type)} · '
            f'{item.status}"]:::{item.status}'
        )
    for item in linked:
        for parent in item.parents or ():
            if parent in shown:
                lines.append(f"    {_node(parent)} --> {_node(item.work_item_id)}")
    if not linked:
        lines.append('    empty["no work items with dependencies"]')
    for status, style in _CLASSES.items():
        lines.append(f"    classDef {status} {style}")
    return "\n".join(lines) + "\n"
