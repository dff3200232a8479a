"""SwarmSH's JSON views of the file store: their words, when they are written, that
readers never see half a file, and the snapshot's move away from their names."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.records import Agent, WorkItem
from orchestrator.store import journal
from orchestrator.store.file import FileStore
from orchestrator.store.views import (
    AGENT_STATUS,
    AGENTS,
    COORDINATION_LOG,
    MARKER,
    VIEW_FILES,
    WORK_CLAIMS,
)

from .conftest import wait_for


def _item(n: int, **extra: object) -> WorkItem:
    return WorkItem(work_item_id=f"w{n:05d}", work_type="t", description=f"item {n}", **extra)  # type: ignore[arg-type]


def _read(path: Path, name: str) -> list[dict[str, object]]:
    data = json.loads((path / name).read_text())
    assert isinstance(data, list)
    return data


def test_each_status_in_swarmsh_words(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    store = FileStore(tmp_path, views_interval_s=0, max_attempts=1, clock=lambda: now[0])
    store.register(Agent(agent_id="a1", team="core", specialization="backend"))
    ids = [store.add_work(_item(n, team="core")) for n in range(7)]
    store.claim("a1", lease_s=10)  # ids[0]: its lease ends below
    for _ in range(5):
        store.claim("a1", lease_s=7200)
    now[0] += 1200
    store.progress(ids[1], 40, agent_id="a1")
    store.progress(ids[2], 10, "blocked", agent_id="a1")
    store.complete(ids[3], "success", 5, agent_id="a1")
    store.complete(ids[4], "blocked", agent_id="a1")
    store.fail(ids[5], "broken", agent_id="a1")
    claims = {c["work_item_id"]: c for c in _read(tmp_path, WORK_CLAIMS)}
    words = {w: (c["status"], c["result"], c["swarm_status"]) for w, c in claims.items()}
    assert words == {
        ids[0]: ("completed", "dead", "dead"),
        ids[1]: ("in_progress", None, "in_progress"),
        ids[2]: ("blocked", None, "blocked"),
        ids[3]: ("completed", "success", "completed"),
        ids[4]: ("completed", "blocked", "failed"),
        ids[5]: ("completed", "failed", "failed"),
        ids[6]: ("pending", None, "pending"),
    }
    assert claims[ids[3]]["velocity_points"] == 5
    assert claims[ids[3]]["claimed_at"] == "2027-01-15T08:00:00Z"
    assert claims[ids[3]]["completed_at"] == "2027-01-15T08:20:00Z"
    assert claims[ids[6]]["agent_id"] is None and claims[ids[6]]["claimed_at"] is None
    log = _read(tmp_path, COORDINATION_LOG)
    assert [(e["work_item_id"], e["result"], e["velocity_points"]) for e in log] == [
        (ids[0], "dead", 0),
        (ids[3], "success", 5),
        (ids[4], "blocked", 0),
        (ids[5], "failed", 0),
    ]
    agents = _read(tmp_path, AGENT_STATUS)
    assert agents == _read(tmp_path, AGENTS)
    (agent,) = agents
    assert (agent["agent_id"], agent["team"], agent["status"]) == ("a1", "core", "active")
    assert agent["current_workload"] == 2
    metrics = agent["performance_metrics"]
    assert metrics == {"tasks_completed": 1, "average_completion_time": "20m", "success_rate": 25.0}


def test_views_are_never_read_back(tmp_path: Path) -> None:
    store = FileStore(tmp_path, views_interval_s=0)
    work_id = store.add_work(_item(1))
    store.compact()
    for name in VIEW_FILES:
        (tmp_path / name).write_text("[not what the store wrote")
    reopened = FileStore(tmp_path, views_interval_s=0)
    assert [i.work_item_id for i in reopened.list_work()] == [work_id]
    reopened.claim("a1")  # a change: the views are rewritten whole
    assert _read(tmp_path, WORK_CLAIMS)[0]["status"] == "active"


def test_no_views_when_turned_off(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.add_work(_item(1))
    store.compact()
    assert not any((tmp_path / name).exists() for name in (*VIEW_FILES, MARKER))


def test_with_an_interval_a_busy_store_refreshes_views_only_when_they_are_due(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path, views_interval_s=3600)
    store.add_work(_item(1))
    assert len(_read(tmp_path, WORK_CLAIMS)) == 1  # none yet: written at once
    store.add_work(_item(2))
    store.add_work(_item(3))
    assert len(_read(tmp_path, WORK_CLAIMS)) == 1  # not due for an hour
    # Another process that writes after every change (a CLI command) brings them up to date.
    FileStore(tmp_path, views_interval_s=0).list_work()
    assert len(_read(tmp_path, WORK_CLAIMS)) == 3

    short = FileStore(tmp_path, views_interval_s=0.05)
    short.add_work(_item(4))
    # Due again once older than the interval: any later operation writes them.
    wait_for(lambda: short.list_work() and len(_read(tmp_path, WORK_CLAIMS)) == 4)


def test_a_closing_process_leaves_the_views_current(tmp_path: Path) -> None:
    store = FileStore(tmp_path, views_interval_s=3600)
    store.add_work(_item(1))
    store.add_work(_item(2))
    assert len(_read(tmp_path, WORK_CLAIMS)) == 1
    store.close()  # an agent stopping, the supervisor at the end of a run
    assert len(_read(tmp_path, WORK_CLAIMS)) == 2


def test_the_last_agent_leaving_brings_the_views_up_to_date(tmp_path: Path) -> None:
    store = FileStore(tmp_path, views_interval_s=3600)
    store.register(Agent(agent_id="agent_1"))
    store.add_work(_item(1))
    store.add_work(_item(2))
    assert len(_read(tmp_path, AGENTS)) == 1 and len(_read(tmp_path, WORK_CLAIMS)) == 0
    store.deregister("agent_1")  # the end of a run: shown now, not in an hour
    assert _read(tmp_path, AGENTS) == [] and len(_read(tmp_path, WORK_CLAIMS)) == 2


_WRITER = """
import sys
from orchestrator.errors import StoreError
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore
store = FileStore(sys.argv[1], views_interval_s=0)
for n in range(int(sys.argv[2])):
    store.add_work(WorkItem(work_item_id=f"x{n}", work_type="t", description="d" * 200))
"""


def test_readers_never_see_half_a_view(tmp_path: Path) -> None:
    store = FileStore(tmp_path, views_interval_s=0)
    store.add_many([_item(n) for n in range(300)])  # views of some size
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), "150"], stdout=subprocess.DEVNULL
    )
    seen: set[int] = set()
    while writer.poll() is None:
        seen.add(len(_read(tmp_path, WORK_CLAIMS)))  # parses whole, every time
        _read(tmp_path, AGENT_STATUS)
        _read(tmp_path, COORDINATION_LOG)
    assert writer.wait(timeout=120) == 0
    assert len(_read(tmp_path, WORK_CLAIMS)) == 450
    assert len(seen) > 2  # the reader did look while the views changed


def _old_layout_store(path: Path) -> list[str]:
    """A store as swarmsh 0.1 left it after a compaction: its snapshot in
    work_claims.json / agents.json, in our own format, and generation 2."""
    old = FileStore(path)
    old.register(Agent(agent_id="a1"))
    ids = [old.add_work(_item(n)) for n in range(3)]
    old.claim("a1")
    old.compact()
    old.close()
    (path / FileStore.WORK).rename(path / WORK_CLAIMS)
    (path / FileStore.AGENTS).rename(path / AGENTS)
    return ids


def test_a_store_of_the_old_layout_opens_and_keeps_its_snapshot(tmp_path: Path) -> None:
    ids = _old_layout_store(tmp_path)
    header = journal.decode((tmp_path / FileStore.JOURNAL).read_bytes().splitlines()[0] + b"\n")
    assert header is not None and header["gen"] == 2  # everything is in the snapshot
    store = FileStore(tmp_path, views_interval_s=0)
    assert [(i.work_item_id, i.status) for i in store.list_work()] == [
        (ids[0], "claimed"),
        (ids[1], "pending"),
        (ids[2], "pending"),
    ]
    assert [a.agent_id for a in store.list_agents()] == ["a1"]
    assert (tmp_path / FileStore.WORK).exists() and (tmp_path / FileStore.AGENTS).exists()
    # The old names now hold SwarmSH's views, and later opens never take them for a snapshot.
    assert _read(tmp_path, WORK_CLAIMS)[0]["status"] == "active"
    store.close()
    assert len(FileStore(tmp_path, views_interval_s=0).list_work()) == 3


def test_adopting_the_old_layout_finishes_after_a_crash_between_its_steps(
    tmp_path: Path,
) -> None:
    _old_layout_store(tmp_path)
    (tmp_path / WORK_CLAIMS).rename(tmp_path / FileStore.WORK)  # the first rename only
    store = FileStore(tmp_path, views_interval_s=0)
    assert len(store.list_work()) == 3 and [a.agent_id for a in store.list_agents()] == ["a1"]


def test_a_view_is_never_taken_for_a_missing_snapshot(tmp_path: Path) -> None:
    """Once views were written, work_claims.json is a view: a store whose snapshot is
    gone never adopts it as one (whatever else it decides about the loss)."""
    store = FileStore(tmp_path, views_interval_s=0)
    store.add_work(_item(1))
    store.compact()
    store.close()
    (tmp_path / FileStore.WORK).unlink()
    with contextlib.suppress(StoreError):  # refusing to open is fine too
        FileStore(tmp_path, views_interval_s=0).list_work()
    assert (tmp_path / WORK_CLAIMS).exists() and not (tmp_path / FileStore.WORK).exists()


def test_a_view_that_cannot_be_written_costs_a_warning_not_the_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(path: str, data: bytes, fsync: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = FileStore(tmp_path, views_interval_s=0)
    monkeypatch.setattr("orchestrator.store.views.write_atomic", full)
    work_id = store.add_work(_item(1))
    store.claim("a1")
    assert caplog.text.count("cannot write SwarmSH views") == 1  # said once, not per operation
    monkeypatch.undo()
    assert store.get(work_id).status == "claimed"
    store.progress(work_id, 10, agent_id="a1")  # space again: written on the next change, or
    wait_for(lambda: store.list_work() and (tmp_path / WORK_CLAIMS).exists())  # once due
    assert _read(tmp_path, WORK_CLAIMS)[0]["status"] == "in_progress"


def test_pipeline_states_in_swarmsh_words(tmp_path: Path) -> None:
    """A cancelled item is finished for SwarmSH ("completed", result "cancelled"); an
    item waiting for its parents is "blocked" with no agent, as no one holds it."""
    store = FileStore(tmp_path, views_interval_s=0)
    parent = store.add_work(_item(1, key="parent"))
    child = store.add_work(_item(2, parents=["parent"]))
    waiting = {c["work_item_id"]: c for c in _read(tmp_path, WORK_CLAIMS)}[child]
    assert (waiting["status"], waiting["agent_id"], waiting["result"]) == ("blocked", None, None)
    store.cancel(parent, "not needed")
    claims = {c["work_item_id"]: c for c in _read(tmp_path, WORK_CLAIMS)}
    for work_id in (parent, child):
        assert (claims[work_id]["status"], claims[work_id]["result"]) == (
            "completed",
            "cancelled",
        )
    store.close()
