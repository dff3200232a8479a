"""Writes ``tests/data/store_v1/``: a file store in the journal format of commit
de268af (every record a whole item version), which ``test_file_store_format`` opens.

Run once with that commit's code first on the path, never with the current code::

    git worktree add /tmp/old de268af
    PYTHONPATH=/tmp/old python tests/data/make_store_v1.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict

from orchestrator.records import Agent, WorkItem
from orchestrator.store.file import FileStore

T0 = 1_764_000_000.0
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_v1")


def main() -> None:
    now = [T0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    shutil.rmtree(HERE, ignore_errors=True)
    store = FileStore(HERE, clock=clock, lease_s=3600.0, archive_after_s=1e9)
    for name in ("a1", "a2"):
        store.register(Agent(agent_id=name, team="core"))
    for n, priority in enumerate(("high", "medium", "low", "critical", "medium", "low")):
        store.add_work(
            WorkItem(
                work_item_id=f"w{n}",
                work_type="feature" if n % 2 else "bug",
                description=f"item {n}",
                priority=priority,
                key=f"key-{n}" if n < 3 else None,
                payload={"n": n},
            )
        )
    store.add_work(WorkItem(work_item_id="child", work_type="bug", description="c", parents=["w1"]))
    first = store.claim("a1")
    assert first is not None
    store.complete(first.work_item_id, "success", 3, {"out": "done"}, agent_id="a1")
    store.compact()  # a second generation: snapshot files and journal/gen-000001.jsonl
    second = store.claim("a2")
    assert second is not None
    store.progress(second.work_item_id, 40, agent_id="a2")
    third = store.claim("a1")
    assert third is not None
    store.fail(third.work_item_id, "broke", agent_id="a1")
    store.heartbeat("a2")
    expected = {
        "items": [asdict(i) for i in store.list_work()],
        "agents": [asdict(a) for a in store.list_agents()],
    }
    store.close()
    os.unlink(os.path.join(HERE, ".lock"))
    with open(os.path.join(os.path.dirname(HERE), "store_v1_expected.json"), "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=True)
    print("wrote", HERE, file=sys.stderr)


if __name__ == "__main__":
    main()
