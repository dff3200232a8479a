"""Functions run in child processes by the pipeline tests (spawn-safe)."""

from __future__ import annotations

import time
from multiprocessing.synchronize import Event
from typing import Any

from orchestrator.store.file import FileStore


def open_store(target: str, schema: str | None) -> Any:
    if schema:
        from orchestrator.store.postgres import PostgresStore

        return PostgresStore(target, schema=schema)
    return FileStore(target)


def drain_graph(target: str, schema: str | None, agent_id: str, out: str, start: Event) -> None:
    """Claim and complete until every item has ended; record each item completed."""
    store = open_store(target, schema)
    done: list[str] = []
    start.wait()
    while True:
        item = store.claim(agent_id)
        if item is None:
            if not store.list_work(include_terminal=False):
                break
            time.sleep(0.01)
            continue
        store.complete(item.work_item_id, "success", agent_id=agent_id)
        done.append(item.work_item_id)
    with open(out, "w") as fh:
        fh.write("\n".join(done))
    store.close()
