"""The ``[[work]]`` tables of swarm.toml as work items (``swarm up`` enqueues them).

Every item gets a key, so that starting the swarm again finds the items of an earlier
start instead of enqueueing them twice (the store holds one item per key until the
item is archived). The key is stable across restarts and machines:

- ``key = "K"`` given: ``K``; with ``foreach``, ``{file}`` in ``K`` is replaced by the
  file, or ``:<file>`` is appended when ``K`` does not mention it;
- otherwise ``<work_type>:<16 hex digits>``, the start of the SHA-256 of the canonical
  JSON (sorted keys, no spaces, UTF-8; TOML dates as their string) of
  ``[work_type, description, payload]`` after ``{file}`` is filled in, so the same
  work in two tables or two swarm files is one item;
- with ``count = n``, copy 1 keeps that key and copy ``i`` (2..n) gets ``#i`` appended,
  so raising ``count`` only adds the new copies.

Priority and team are not part of a derived key: changing them does not make the
work new.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from orchestrator.records import WorkItem

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig, WorkSpec


def configured_items(config: SwarmConfig) -> list[WorkItem]:
    """``count`` items per table, or per file matching ``foreach`` (relative to
    swarm.toml's folder, sorted), with ``{file}`` filled in and a key each. ``after``
    names keys: a table's ``key`` stands for all of its items, any other key for the
    item holding it (here or already in the store); the store refuses unknown ones."""
    items: list[WorkItem] = []
    tables: dict[str, list[str]] = {}
    waits: list[tuple[list[str], int, int]] = []  # after, and the span of the table's items
    for spec in _parents_first(config.work):
        files = (
            sorted(
                str(p.relative_to(config.base_dir))
                for p in config.base_dir.glob(spec.foreach)
                if p.is_file()
            )
            if spec.foreach
            else [None]
        )
        start = len(items)
        for file in files:
            description = fill(spec.description, file)
            payload = fill(spec.payload, file)
            for copy in range(1, spec.count + 1):
                items.append(
                    WorkItem(
                        work_item_id="",
                        work_type=spec.work_type,
                        description=description,
                        priority=spec.priority,
                        team=spec.team,
                        payload=payload,
                        key=work_key(spec, file, description, payload, copy),
                    )
                )
        if spec.key is not None:
            tables[spec.key] = [item.key for item in items[start:] if item.key is not None]
        if spec.after:
            waits.append((spec.after, start, len(items)))
    for after, first, end in waits:
        parents = [key for ref in after for key in tables.get(ref, [ref])]
        for index in range(first, end):
            items[index] = items[index].evolve(parents=parents)
    return items


def _parents_first(specs: list[WorkSpec]) -> list[WorkSpec]:
    """The tables, each after the tables its ``after`` names (as given otherwise), so
    that a parent is enqueued no later than its children's batch."""
    by_key = {spec.key: spec for spec in specs if spec.key is not None}
    order: list[WorkSpec] = []
    placed: set[int] = set()

    def place(spec: WorkSpec, path: tuple[int, ...]) -> None:
        if id(spec) in placed or id(spec) in path:  # a cycle: the store names it
            return
        for ref in spec.after:
            if ref in by_key:
                place(by_key[ref], (*path, id(spec)))
        placed.add(id(spec))
        order.append(spec)

    for spec in specs:
        place(spec, ())
    return order


def work_key(spec: WorkSpec, file: str | None, description: str, payload: Any, copy: int) -> str:
    """The key of one expanded item (see the module docstring)."""
    if spec.key is not None:
        key = spec.key
        if file is not None:
            key = key.replace("{file}", file) if "{file}" in key else f"{key}:{file}"
    else:
        content = [spec.work_type, description, payload]
        canonical = json.dumps(
            content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        key = f"{spec.work_type}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
    return key if copy == 1 else f"{key}#{copy}"


def fill(value: Any, file: str | None) -> Any:
    """Replace ``{file}`` in the strings of a work spec."""
    if file is None:
        return value
    if isinstance(value, str):
        return value.replace("{file}", file)
    if isinstance(value, list):
        return [fill(v, file) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, file) for k, v in value.items()}
    return value
