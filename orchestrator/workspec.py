"""The ``[[work]]`` tables of swarm.toml as work items (``swarm up`` enqueues them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.records import WorkItem

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig


def configured_items(config: SwarmConfig) -> list[WorkItem]:
    """``count`` items per table, or per file matching ``foreach`` (relative to
    swarm.toml's folder, sorted), with ``{file}`` filled in."""
    items: list[WorkItem] = []
    for spec in config.work:
        files = (
            sorted(
                str(p.relative_to(config.base_dir))
                for p in config.base_dir.glob(spec.foreach)
                if p.is_file()
            )
            if spec.foreach
            else [None]
        )
        for file in files:
            for _ in range(spec.count):
                items.append(
                    WorkItem(
                        work_item_id="",
                        work_type=spec.work_type,
                        description=fill(spec.description, file),
                        priority=spec.priority,
                        team=spec.team,
                        payload=fill(spec.payload, file),
                    )
                )
    return items


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
