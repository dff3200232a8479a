"""The store contract for pipelines (both backends): dependencies, cascades, cancel,
retry and follow-ups enqueued with a completion."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Conflict, InvalidArgument
from orchestrator.records import Agent, WorkItem

from .conftest import StoreClock, StoreFactory
from .pipeline_workers import drain_graph


def item(key: str, after: list[str] | None = None, **extra: Any) -> WorkItem:
    return WorkItem("", "step", f"do {key}", key=key, parents=after, **extra)


def statuses(store: Any, ids: Any) -> list[str]:
    return [str(store.get(work_id).status) for work_id in ids]


def finish(store: Any, expected_key: str) -> str:
    got = store.claim("a1")
    assert got is not None and got.key == expected_key
    store.complete(got.work_item_id, "success", agent_id="a1")
    return str(got.work_item_id)


def test_blocked_items_are_never_claimed_until_every_parent_completes(store: Any) -> None:
    a, b = store.add_many([item("a"), item("b")])
    (c,) = store.add_many([item("c", after=["a", b], priority="critical")])  # a key, an id
    assert statuses(store, [a, b, c]) == ["pending", "pending", "blocked"]
    assert store.get(c).parents == [a, b] and store.get(c).agent_id is None
    finish(store, "a")
    assert store.get(c).status == "blocked"
    finish(store, "b")
    assert store.get(c).status == "pending"
    finish(store, "c")  # critical: next once ready
    assert store.claim("a1") is None


def test_a_blocked_item_cannot_be_completed_or_progressed(store: Any) -> None:
    _, child = store.add_many([item("a"), item("b", after=["a"])])
    for act in (
        lambda: store.complete(child),
        lambda: store.progress(child, 50),
        lambda: store.release(child),
    ):
        with pytest.raises(Conflict, match="blocked on its parents"):
            act()


def test_parents_of_completed_work_start_the_child_pending(store: Any) -> None:
    (a,) = store.add_many([item("a")])
    finish(store, "a")
    (b,) = store.add_many([item("b", after=[a])])
    assert store.get(b).status == "pending"


def test_a_cycle_or_an_unknown_parent_is_refused_and_nothing_is_added(store: Any) -> None:
    with pytest.raises(InvalidArgument, match="dependency cycle") as cycle:
        store.add_many([item("x", after=["z"]), item("y", after=["x"]), item("z", after=["y"])])
    assert " -> " in str(cycle.value)
    with pytest.raises(
        InvalidArgument, match=r"unknown parent work: nope \(parent of 'bad' \(work_"
    ):
        store.add_many([item("ok"), item("bad", after=["nope"])])
    with pytest.raises(InvalidArgument, match="itself"):
        store.add_many([item("self", after=["self"])])
    assert store.list_work() == []


def test_a_dead_parent_cancels_every_descendant_with_the_reason(store: Any) -> None:
    a, b, c, d = store.add_many(
        [
            item("a", max_attempts=1),
            item("b", after=["a"]),
            item("c", after=["a"]),
            item("d", after=["b", "c"]),
        ]
    )
    got = store.claim("a1")
    store.fail(got.work_item_id, "boom", agent_id="a1", retry=True)  # the last attempt
    assert statuses(store, [a, b, c, d]) == ["dead"] + ["cancelled"] * 3
    assert store.get(b).error == f"parent {a} is dead"
    assert store.get(d).error in (f"parent {b} is cancelled", f"parent {c} is cancelled")
    assert store.claim("a1") is None
    (late,) = store.add_many([item("late", after=[d])])
    assert store.get(late).status == "cancelled"
    assert store.get(late).error == f"parent {d} is cancelled"


def test_an_expired_lease_that_kills_a_parent_cancels_its_children(
    make_store: StoreFactory, store_clock: StoreClock
) -> None:
    store = make_store(lease_s=5)
    a, b = store.add_many([item("a", max_attempts=1), item("b", after=["a"])])
    store.claim("a1")
    store_clock.advance(6)
    assert store.claim("a2") is None  # the expiry ran, and b is not claimable
    assert statuses(store, [a, b]) == ["dead", "cancelled"]
    assert store.get(b).error == f"parent {a} is dead"


def test_retry_revives_the_item_and_the_descendants_it_cancelled(store: Any) -> None:
    a, b, c = store.add_many([item("a"), item("b", after=["a"]), item("c", after=["b"])])
    got = store.claim("a1")
    store.fail(got.work_item_id, "broken", agent_id="a1")
    assert statuses(store, [a, b, c]) == ["failed", "cancelled", "cancelled"]
    with pytest.raises(Conflict, match="retry the parent first"):
        store.retry(b)
    retried = store.retry(a)
    assert (retried.status, retried.attempts, retried.error) == ("pending", 0, None)
    assert statuses(store, [a, b, c]) == ["pending", "blocked", "blocked"]
    assert store.get(c).error is None
    for key in ("a", "b", "c"):
        finish(store, key)
    with pytest.raises(Conflict, match="only dead, failed or cancelled"):
        store.retry(c)


def test_cancel_pending_and_blocked_items_and_their_descendants(store: Any) -> None:
    a, b, other = store.add_many([item("a"), item("b", after=["a"]), item("other")])
    cancelled = store.cancel(a, "not needed")
    assert (cancelled.status, cancelled.error) == ("cancelled", "not needed")
    assert statuses(store, [a, b, other]) == ["cancelled", "cancelled", "pending"]
    with pytest.raises(Conflict, match="already cancelled"):
        store.cancel(a)
    with pytest.raises(Conflict, match=f"parent {a} of {b} is cancelled"):
        store.retry(b)
    store.retry(a)
    assert statuses(store, [a, b]) == ["pending", "blocked"]


def test_a_cancelled_held_item_refuses_its_holders_completion(store: Any) -> None:
    store.register(Agent("a1"))
    a, b = store.add_many([item("a"), item("b", after=["a"])])
    store.claim("a1")
    assert store.heartbeat("a1") == 1
    store.cancel(a)
    assert store.heartbeat("a1") == 0  # how the agent learns: it holds nothing now
    with pytest.raises(Conflict):
        store.complete(a, "success", agent_id="a1")
    assert statuses(store, [a, b]) == ["cancelled", "cancelled"]


def test_follow_ups_are_enqueued_with_the_completion(store: Any) -> None:
    (plan,) = store.add_many([item("plan")])
    store.claim("a1")
    parts = [WorkItem(f"work_part{n}", "step", f"part {n}", parents=[plan]) for n in range(3)]
    join = WorkItem("work_join", "join", "join", parents=[p.work_item_id for p in parts])
    done, enqueued = store.complete_and_enqueue(plan, [*parts, join], {"n": 3}, "a1")
    assert done.status == "completed" and done.result == {"n": 3}
    assert list(enqueued) == ["work_part0", "work_part1", "work_part2", "work_join"]
    assert statuses(store, enqueued) == ["pending"] * 3 + ["blocked"]
    for _ in range(3):
        got = store.claim("a1")
        store.complete(got.work_item_id, "success", agent_id="a1")
    assert store.get("work_join").status == "pending"


def test_a_refused_completion_enqueues_nothing(store: Any) -> None:
    (plan,) = store.add_many([item("plan")])
    store.claim("a1")
    store.release(plan)
    store.claim("a2")  # a1 lost it
    with pytest.raises(Conflict):
        store.complete_and_enqueue(plan, [WorkItem("", "step", "x", parents=[plan])], None, "a1")
    assert [i.work_item_id for i in store.list_work()] == [plan]


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_diamonds_complete_in_order_under_8_processes(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "postgres":
        from orchestrator.store.postgres import PostgresStore

        target, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        store: Any = PostgresStore(target, schema=schema)
    else:
        from orchestrator.store.file import FileStore

        target, schema = str(tmp_path / "store"), None
        store = FileStore(target)
    batch: list[WorkItem] = []
    for n in range(30):  # A -> B, C -> D, thirty times
        batch += [
            item(f"{n}A"),
            item(f"{n}B", after=[f"{n}A"]),
            item(f"{n}C", after=[f"{n}A"]),
            item(f"{n}D", after=[f"{n}B", f"{n}C"]),
        ]
    store.add_many(batch)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    outs = [tmp_path / f"done{n}" for n in range(8)]
    procs = [
        ctx.Process(target=drain_graph, args=(target, schema, f"agent{n}", str(outs[n]), go))
        for n in range(8)
    ]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(180)
    assert [proc.exitcode for proc in procs] == [0] * 8
    done = Counter(w for out in outs for w in out.read_text().split())
    assert len(done) == 120 and set(done.values()) == {1}, "an item was lost or doubled"
    final = {i.work_item_id: i for i in store.list_work()}
    store.close()
    # The order of events: on PostgreSQL an item's times are its transaction's start
    # (now()), which need not follow commit order; the operation log's ids do (the
    # child's claim is logged after the parent's completion committed). The file
    # store's times are taken under its lock, in order.
    if backend == "postgres":
        import psycopg

        with psycopg.connect(target) as conn:
            rows = conn.execute(
                f"SELECT work_item_id, op, max(id) FROM {schema}.events"
                " WHERE op IN ('claim', 'complete') GROUP BY work_item_id, op"
            ).fetchall()
        logged = {(work_id, op): float(at) for work_id, op, at in rows}
    else:
        logged = {(i.work_item_id, "claim"): i.claimed_at or 0.0 for i in final.values()}
        logged |= {(i.work_item_id, "complete"): i.completed_at or 0.0 for i in final.values()}
    for child in final.values():
        assert child.status == "completed"
        for parent in child.parents or ():
            claimed = logged[(child.work_item_id, "claim")]
            assert claimed >= logged[(parent, "complete")], "claimed before a parent"


def test_a_child_with_two_parents_that_gave_up_waits_for_both_retries(store: Any) -> None:
    a, b, c = store.add_many([item("a"), item("b"), item("c", after=["a", "b"])])
    for _ in range(2):
        got = store.claim("a1")
        store.fail(got.work_item_id, "broken", agent_id="a1")
    assert store.get(c).error == f"parent {a} is failed"
    store.retry(a)
    assert (store.get(c).status, store.get(c).error) == ("cancelled", f"parent {b} is failed")
    store.retry(b)
    assert (store.get(c).status, store.get(c).error) == ("blocked", None)


def test_a_follow_up_whose_key_is_taken_is_not_added_twice(store: Any) -> None:
    plan, taken = store.add_many([item("plan"), item("plan/x")])
    store.claim("a1")
    ups = [WorkItem("", "step", "x", key="plan/x", parents=[plan]), item("plan/y", after=[plan])]
    _, enqueued = store.complete_and_enqueue(plan, ups, None, "a1")
    assert enqueued.new == (False, True) and enqueued[0] == taken
    assert sorted(str(i.key) for i in store.list_work()) == ["plan", "plan/x", "plan/y"]


def test_a_finished_parent_is_not_archived_while_a_child_still_needs_it(tmp_path: Path) -> None:
    """Archiving forgets finished items; a parent a blocked child will read its output
    from stays until that child is finished too."""
    from orchestrator.store.file import FileStore

    from .conftest import FileClock

    clock = FileClock()
    store = FileStore(tmp_path / "store", clock=clock, archive_after_s=60)
    first, _second = store.add_many([item("first"), item("second")])
    (child,) = store.add_many([item("child", after=["first", "second"])])
    finish(store, "first")
    clock.advance(3600)
    store.compact()
    assert store.get(first).status == "completed"  # the child waits for "second" still
    finish(store, "second")
    got = store.claim("a1")
    assert got is not None and got.work_item_id == child
    store.complete(child, "success", agent_id="a1")
    clock.advance(3600)
    assert store.compact() == 3  # all finished: now all may go
    store.close()
