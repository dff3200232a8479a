"""What the processes of tests/test_pg_claim_many.py run (importable after spawn, and
by the agents' python backend)."""

from __future__ import annotations

import time
from multiprocessing.synchronize import Event
from pathlib import Path

from orchestrator.records import WorkItem


def gated(item: WorkItem) -> str:
    """A short item (2 ms of work) that records that it ran, and waits while its
    ``hold`` file exists (so a test can stop the agents mid-batch and look)."""
    payload = item.payload or {}
    with open(payload["log"], "a") as fh:
        fh.write(item.work_item_id + "\n")
    time.sleep(0.002)  # the work: short, yet a fast machine does not drain before a look
    hold = Path(payload["hold"])
    deadline = time.monotonic() + 120
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "ok"


def claim_batches(dsn: str, schema: str, agent_id: str, count: int, out: str, go: Event) -> None:
    """Claim ``count`` at a time and complete them, until nothing is pending; write the
    ids claimed, one a line."""
    from orchestrator.store.base import claim_many
    from orchestrator.store.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema)
    if not go.wait(120):  # the test gave up: do not outlive it
        raise SystemExit(1)
    claimed: list[str] = []
    while items := claim_many(store, agent_id, count=count):
        for item in items:
            claimed.append(item.work_item_id)
            store.complete(item.work_item_id, "success", agent_id=agent_id)
    Path(out).write_text("\n".join(claimed))
    store.close()


def hold_a_batch(dsn: str, schema: str, agent_id: str, count: int, out: str) -> None:
    """Claim one batch, say which (the file appears whole), then wait to be killed."""
    from orchestrator.store.base import claim_many
    from orchestrator.store.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema)
    ids = [item.work_item_id for item in claim_many(store, agent_id, count=count)]
    Path(out + ".tmp").write_text("\n".join(ids))
    Path(out + ".tmp").rename(out)
    deadline = time.monotonic() + 300  # killed long before, unless the test failed
    while time.monotonic() < deadline:
        time.sleep(1)
