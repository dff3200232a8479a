"""An agent's stop of the item it works on: a heartbeat verdict on an item that has just
ended must not stop the next one, and an item stopped while the store still says it is
ours goes back to the queue (held by a live agent, it would otherwise never run again)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agents.backends import load_backend
from agents.loop import AgentRunner, AgentSpec, Working
from orchestrator.config import AgentGroup, StoreConfig
from orchestrator.errors import LockTimeout
from orchestrator.records import Agent, WorkItem, WorkStatus
from orchestrator.store.base import Store


def _runner(tmp_path: Path) -> tuple[AgentRunner, Store]:
    spec = AgentSpec(
        agent_id="agent_stop_1",
        group=AgentGroup(name="w"),
        slot=1,
        host="test",
        store_path=str(tmp_path / "store"),
        store=StoreConfig(path=str(tmp_path / "store")),
        results_dir=str(tmp_path / "results"),
    )
    runner = AgentRunner(spec)
    runner.store.register(Agent(agent_id=spec.agent_id, pid=os.getpid()))
    return runner, runner.store


def _add(store: Store, name: str) -> str:
    return store.add_work(
        WorkItem(f"work_{name.replace(' ', '_')}", "job", name, payload={"argv": ["true"]})
    )


def test_a_verdict_on_an_item_that_just_ended_does_not_stop_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, store = _runner(tmp_path)
    first, second = _add(store, "first"), _add(store, "second")
    assert store.claim(runner.spec.agent_id) is not None
    runner.working = Working(first, threading.Event())
    next_stop = threading.Event()

    def first_ends_then_next_starts(work_id: str, held: int) -> bool:
        # What the agent's main thread may do between the heartbeat and its verdict.
        store.complete(work_id, "success", agent_id=runner.spec.agent_id)
        assert store.claim(runner.spec.agent_id) is not None
        runner.working = Working(second, next_stop)
        return True

    monkeypatch.setattr(runner, "_lost", first_ends_then_next_starts)
    runner._beat()
    assert not next_stop.is_set()
    now = store.get(second)
    assert now.held and now.agent_id == runner.spec.agent_id


def test_the_item_being_worked_on_is_stopped_when_it_is_cancelled(tmp_path: Path) -> None:
    runner, store = _runner(tmp_path)
    item = _add(store, "cancelled while it runs")
    assert store.claim(runner.spec.agent_id) is not None
    stop = threading.Event()
    runner.working = Working(item, stop)
    runner._beat()
    assert not stop.is_set()  # still ours
    store.cancel(item, reason="not needed")
    runner._beat()
    assert stop.is_set()


def test_an_item_stopped_while_still_ours_is_released_without_using_an_attempt(
    tmp_path: Path,
) -> None:
    runner, store = _runner(tmp_path)
    item = _add(store, "stopped by mistake")
    claimed = store.claim(runner.spec.agent_id)
    assert claimed is not None
    stop = threading.Event()
    stop.set()
    outcome = runner._work_traced(load_backend(runner.group), claimed, stop, [])
    assert outcome is not None and not outcome.ok
    now = store.get(item)
    assert (now.status, now.agent_id, now.attempts) == (WorkStatus.PENDING, None, 0)
    assert not list((tmp_path / "results").glob("*.json"))  # nothing recorded for it


def test_an_end_the_store_could_not_record_is_recorded_before_the_next_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, store = _runner(tmp_path)
    item = _add(store, "finished while the store was busy")
    claimed = store.claim(runner.spec.agent_id)
    assert claimed is not None
    real_complete = store.complete
    calls: list[str] = []

    def busy_once(work_id: str, *args: object, **kwargs: object) -> object:
        calls.append(work_id)
        if len(calls) == 1:
            raise LockTimeout("the store is busy")
        return real_complete(work_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "complete", busy_once)
    outcome = runner._work_traced(load_backend(runner.group), claimed, threading.Event(), [])
    assert outcome is not None and outcome.ok
    # Still held by us, its lease kept by our heartbeat: nobody else would finish it.
    assert store.get(item).held and list(runner.unrecorded)
    assert not list((tmp_path / "results").glob("*.json"))  # the result waits, pending
    runner._record_unrecorded()
    assert store.get(item).status == WorkStatus.COMPLETED and not runner.unrecorded
    assert [p.name for p in (tmp_path / "results").glob("*.json")] == [f"{item}.json"]
