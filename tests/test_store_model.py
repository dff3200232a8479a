"""Random operation sequences on the file store, checked against a tiny model.

The clock is fake, so lease expiry is part of the game; small journal thresholds make
compactions happen, the store is reopened from disk now and then, operations switch
between two handles (each catching up on what the other wrote), and another handle
archives finished items (which frees their work keys). Items may wait for parents:
the model settles them as a fixpoint (blocked until every parent completed, cancelled
when one gave up), which the store must agree with however it gets there.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from orchestrator.errors import Conflict, InvalidArgument, NotFound
from orchestrator.records import PRIORITIES, TERMINAL_STATUSES, Agent, ClaimFilter, WorkItem
from orchestrator.store.file import FileStore

LEASE = 10.0
MAX_ATTEMPTS = 3
AGENTS = st.sampled_from(["x", "y", "z"])
TYPES = st.sampled_from(["a", "b"])
KEYS = st.sampled_from(["k1", "k2", "k3"])


@dataclass
class ModelItem:
    work_id: str
    work_type: str
    priority: str
    created: float
    status: str = "pending"
    agent: str | None = None
    attempts: int = 0
    lease: float = 0.0
    key: str | None = None
    finished: float = 0.0  # when it became completed, failed, dead or cancelled
    parents: tuple[str, ...] = ()
    reason: str | None = None  # why cancelled: "parent" (a cascade) or "operator"


GAVE_UP = ("dead", "failed", "cancelled")


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="swarm-model-")
        self.now = 1000.0
        self.store = self._open()
        # A second process's handle: operations switch between the two, so each replays
        # what the other wrote since it last looked, in batches of every size.
        self.other = self._open()
        self.model: dict[str, ModelItem] = {}
        self.registered: set[str] = set()
        self.counter = 0

    def _open(self) -> FileStore:
        return FileStore(
            self.dir,
            lease_s=LEASE,
            max_attempts=MAX_ATTEMPTS,
            archive_after_s=1e9,
            compact_bytes=3000,
            clock=lambda: self.now,
        )

    def teardown(self) -> None:
        self.store.close()
        self.other.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- model helpers -------------------------------------------------------------

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds
        for item in self.model.values():
            if item.status in ("claimed", "in_progress") and item.lease <= self.now:
                self._return(item, count=True)
        self.settle()

    def parent_states(self, item: ModelItem) -> list[str]:
        """Its parents' statuses; an archived parent had completed."""
        return [self.model[p].status if p in self.model else "completed" for p in item.parents]

    def settle(self) -> None:
        changed = True
        while changed:
            changed = False
            for item in self.model.values():
                if item.status not in ("blocked", "pending") or not item.parents:
                    continue
                states = self.parent_states(item)
                if any(s in GAVE_UP for s in states):
                    item.status, item.reason, item.finished = "cancelled", "parent", self.now
                    changed = True
                elif item.status == "blocked" and all(s == "completed" for s in states):
                    item.status = "pending"
                    changed = True

    def revive(self, retried: ModelItem) -> None:
        for child in self.model.values():
            if (
                retried.work_id in child.parents
                and child.status == "cancelled"
                and child.reason == "parent"
                and not any(s in GAVE_UP for s in self.parent_states(child))
            ):
                child.status, child.reason = "blocked", None
                self.revive(child)

    def _return(self, item: ModelItem, count: bool) -> None:
        item.attempts += 1 if count else 0
        if count and item.attempts >= MAX_ATTEMPTS:
            item.status, item.finished = "dead", self.now
        else:
            item.status, item.agent = "pending", None

    def held(self, agent: str | None = None) -> list[ModelItem]:
        return sorted(
            (
                i
                for i in self.model.values()
                if i.status in ("claimed", "in_progress") and (agent is None or i.agent == agent)
            ),
            key=lambda i: i.work_id,
        )

    # -- rules -------------------------------------------------------------------------

    @rule(priority=st.sampled_from(list(PRIORITIES)), work_type=TYPES)
    def add(self, priority: str, work_type: str) -> None:
        self.tick()
        self.counter += 1
        work_id = f"w{self.counter:04d}"
        self.store.add_work(
            WorkItem(work_item_id=work_id, work_type=work_type, description="d", priority=priority)
        )
        self.model[work_id] = ModelItem(work_id, work_type, priority, self.now)

    @rule(priority=st.sampled_from(list(PRIORITIES)), work_type=TYPES, key=KEYS)
    def add_keyed(self, priority: str, work_type: str, key: str) -> None:
        self.tick()
        self.counter += 1
        work_id = f"w{self.counter:04d}"
        got = self.store.add_many(
            [WorkItem(work_id, work_type=work_type, description="d", priority=priority, key=key)]
        )
        holder = next((i for i in self.model.values() if i.key == key), None)
        if holder is not None:
            assert (list(got), got.new) == ([holder.work_id], (False,))
            return
        assert (list(got), got.new) == ([work_id], (True,))
        self.model[work_id] = ModelItem(work_id, work_type, priority, self.now, key=key)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), work_type=TYPES)
    def add_child(self, data: st.DataObject, work_type: str) -> None:
        ids = sorted(self.model)
        parents = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
        self.tick()
        self.counter += 1
        work_id = f"w{self.counter:04d}"
        sibling = f"w{self.counter + 1:04d}"
        cyclic = data.draw(st.booleans())
        batch = [WorkItem(work_id, work_type, "d", parents=[*parents])]
        if cyclic:  # a second item in the batch, and the first waiting for it too
            batch = [
                WorkItem(work_id, work_type, "d", parents=[*parents, sibling]),
                WorkItem(sibling, work_type, "d", parents=[work_id]),
            ]
        try:
            self.store.add_many(batch)
        except InvalidArgument as exc:
            assert cyclic and "dependency cycle" in str(exc)
            return
        assert not cyclic
        child = ModelItem(work_id, work_type, "medium", self.now, parents=tuple(parents))
        states = self.parent_states(child)
        child.status = "pending" if all(s == "completed" for s in states) else "blocked"
        self.model[work_id] = child
        self.settle()

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.model.values(), key=lambda i: i.work_id)))
        self.tick()
        try:
            self.store.cancel(item.work_id)
        except Conflict:
            assert item.status in TERMINAL_STATUSES
            return
        assert item.status not in TERMINAL_STATUSES
        item.status, item.reason, item.finished = "cancelled", "operator", self.now
        self.settle()

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.model.values(), key=lambda i: i.work_id)))
        self.tick()
        states = self.parent_states(item)
        try:
            self.store.retry(item.work_id)
        except Conflict:
            assert item.status not in GAVE_UP or any(s in GAVE_UP for s in states)
            return
        assert item.status in GAVE_UP and not any(s in GAVE_UP for s in states)
        waiting = any(s != "completed" for s in states)
        item.status = "blocked" if waiting else "pending"
        item.agent, item.attempts, item.reason = None, 0, None
        self.revive(item)
        self.settle()

    @rule()
    def archive(self) -> None:
        """Another handle compacts, archiving every item finished before now."""
        self.tick()
        archiver = FileStore(self.dir, archive_after_s=0.0, clock=lambda: self.now)
        try:
            archiver.compact()
        finally:
            archiver.close()
        # A finished item an unfinished child still waits on stays (its output is needed).
        awaited = {
            parent
            for child in self.model.values()
            if child.status not in TERMINAL_STATUSES
            for parent in child.parents
        }
        for work_id, item in list(self.model.items()):
            if item.status in TERMINAL_STATUSES and item.finished < self.now:
                if work_id not in awaited:
                    del self.model[work_id]

    @rule(agent=AGENTS, only=st.none() | TYPES)
    def claim(self, agent: str, only: str | None) -> None:
        self.tick()
        got = self.store.claim(agent, ClaimFilter(work_types=frozenset({only}) if only else None))
        candidates = sorted(
            (
                i
                for i in self.model.values()
                if i.status == "pending" and (only is None or i.work_type == only)
            ),
            key=lambda i: (PRIORITIES[i.priority], i.created),
        )
        if not candidates:
            assert got is None
            return
        expected = candidates[0]
        assert got is not None and got.work_item_id == expected.work_id
        expected.status, expected.agent, expected.lease = "claimed", agent, self.now + LEASE

    @precondition(lambda self: self.held())
    @rule(data=st.data(), as_holder=st.booleans())
    def progress(self, data: st.DataObject, as_holder: bool) -> None:
        item = data.draw(st.sampled_from(self.held()))
        agent = item.agent if as_holder else "intruder"
        self.tick()
        still_held = item.status in ("claimed", "in_progress")
        try:
            self.store.progress(item.work_id, 50, agent_id=agent)
        except Conflict:
            assert not (as_holder and still_held)
            return
        assert as_holder and still_held
        item.status, item.lease = "in_progress", self.now + LEASE

    @precondition(lambda self: self.held())
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "fail", "retry", "release"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        self.tick()
        item = data.draw(st.sampled_from(sorted(self.model.values(), key=lambda i: i.work_id)))
        holder = item.agent
        try:
            if outcome == "complete":
                self.store.complete(item.work_id, "success", 3, agent_id=holder)
            elif outcome == "release":
                self.store.release(item.work_id, agent_id=holder)
            else:
                self.store.fail(item.work_id, "boom", agent_id=holder, retry=outcome == "retry")
        except Conflict:
            assert item.status not in ("claimed", "in_progress")
            return
        assert item.status in ("claimed", "in_progress")
        if outcome == "complete":
            item.status, item.finished = "completed", self.now
        elif outcome == "fail":
            item.status, item.finished = "failed", self.now
        else:
            self._return(item, count=outcome == "retry")
        self.settle()

    @rule(agent=AGENTS)
    def heartbeat(self, agent: str) -> None:
        self.tick()
        mine = self.held(agent)
        try:
            count = self.store.heartbeat(agent)
        except NotFound:
            assert agent not in self.registered and not mine
            return
        assert count == len(mine)
        for item in mine:
            item.lease = self.now + LEASE

    @rule(agent=AGENTS)
    def register(self, agent: str) -> None:
        self.tick()
        self.store.register(Agent(agent_id=agent))
        self.registered.add(agent)

    @rule(agent=AGENTS)
    def agent_dies(self, agent: str) -> None:
        self.tick()
        released = self.store.release_agent(agent)
        mine = self.held(agent)
        assert sorted(i.work_item_id for i in released) == [i.work_id for i in mine]
        for item in mine:
            self._return(item, count=True)
        self.settle()

    @rule(seconds=st.sampled_from([3.0, 9.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.tick(seconds)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()

    @rule()
    def switch_process(self) -> None:
        self.store, self.other = self.other, self.store

    @invariant()
    def store_matches_model(self) -> None:
        stored = {i.work_item_id: i for i in self.store.list_work()}
        assert set(stored) == set(self.model)
        for work_id, expected in self.model.items():
            got = stored[work_id]
            assert (
                got.status,
                got.agent_id if got.held else expected.agent,
                got.attempts,
                got.key,
            ) == (expected.status, expected.agent, expected.attempts, expected.key), work_id
        view = self._open()  # a second process's view, rebuilt from disk
        try:
            assert {i.work_item_id: i.status for i in view.list_work()} == {
                w: m.status for w, m in self.model.items()
            }
        finally:
            view.close()


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestStoreModel = StoreMachine.TestCase
