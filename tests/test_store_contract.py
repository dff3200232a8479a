"""The store contract. Every backend runs these same tests (see conftest.BACKENDS)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import Conflict, InvalidArgument, NotFound
from orchestrator.records import Agent, ClaimFilter, WorkItem, out_of_attempts

from .conftest import StoreClock, StoreFactory, wait_for


def item(
    work_type: str = "feature",
    priority: str = "medium",
    team: str | None = None,
    work_id: str = "",
    **extra: Any,
) -> WorkItem:
    return WorkItem(
        work_item_id=work_id,
        work_type=work_type,
        description=f"do {work_type}",
        priority=priority,
        team=team,
        **extra,
    )


def test_add_then_get_round_trips_every_field(store: Any) -> None:
    work_id = store.add_work(item(team="core", payload={"argv": ["echo", "hi"]}))
    got = store.get(work_id)
    assert got.work_item_id == work_id and work_id.startswith("work_")
    assert (got.work_type, got.priority, got.team, got.status) == (
        "feature",
        "medium",
        "core",
        "pending",
    )
    assert got.payload == {"argv": ["echo", "hi"]}
    assert got.attempts == 0 and got.created_at > 0


def test_claim_takes_highest_priority_then_oldest(store: Any) -> None:
    low = store.add_work(item(priority="low"))
    medium_old = store.add_work(item(priority="medium"))
    medium_new = store.add_work(item(priority="medium"))
    critical = store.add_work(item(priority="critical"))
    high = store.add_work(item(priority="high"))
    order = [store.claim("a1").work_item_id for _ in range(5)]
    assert order == [critical, high, medium_old, medium_new, low]
    assert store.claim("a1") is None


def test_claim_respects_type_and_team_filters(store: Any) -> None:
    bug = store.add_work(item("bug_fix", team="core"))
    doc = store.add_work(item("documentation", team="docs", priority="critical"))
    assert store.claim("a1", ClaimFilter(work_types=frozenset({"research"}))) is None
    assert store.claim("a1", ClaimFilter(teams=frozenset({"core"}))).work_item_id == bug
    got = store.claim(
        "a2", ClaimFilter(work_types=frozenset({"documentation"}), teams=frozenset({"docs"}))
    )
    assert got.work_item_id == doc


def test_a_claimed_item_is_not_claimed_again(store: Any) -> None:
    store.add_work(item())
    first = store.claim("a1")
    assert first.status == "claimed" and first.agent_id == "a1" and first.lease_expires_at
    assert store.claim("a2") is None


def test_claim_new_creates_and_claims_in_one_step(store: Any) -> None:
    got = store.claim_new("a1", item("feature", "high"))
    assert got.status == "claimed" and got.agent_id == "a1"
    assert store.get(got.work_item_id).status == "claimed"
    assert store.claim("a2") is None


def test_progress_by_holder_other_agent_and_unknown(store: Any) -> None:
    store.add_work(item())
    work_id = store.claim("a1").work_item_id
    got = store.progress(work_id, 40, "in_progress", agent_id="a1")
    assert (got.progress, got.status) == (40, "in_progress")
    assert store.progress(work_id, 50, "blocked", agent_id="a1").status == "blocked"
    with pytest.raises(Conflict):
        store.progress(work_id, 60, agent_id="intruder")
    with pytest.raises(NotFound):
        store.progress("work_missing", 60)
    with pytest.raises(InvalidArgument):
        store.progress(work_id, 101, agent_id="a1")
    with pytest.raises(InvalidArgument):
        store.progress(work_id, 10, "sleeping", agent_id="a1")


def test_complete_checks_holder_status_and_points(store: Any) -> None:
    pending = store.add_work(item())
    with pytest.raises(Conflict):
        store.complete(pending, agent_id="a1")
    work_id = store.claim("a1").work_item_id
    with pytest.raises(Conflict):
        store.complete(work_id, agent_id="a2")
    with pytest.raises(InvalidArgument):
        store.complete(work_id, "success", 22, agent_id="a1")
    with pytest.raises(InvalidArgument):
        store.complete(work_id, "great", agent_id="a1")
    done = store.complete(work_id, "success", 8, result="ok", agent_id="a1")
    assert (done.status, done.story_points, done.result, done.progress) == (
        "completed",
        8,
        "ok",
        100,
    )
    with pytest.raises(Conflict):
        store.complete(work_id, agent_id="a1")


def test_complete_failed_or_blocked_is_terminal_failure(store: Any) -> None:
    for status in ("failed", "blocked"):
        work_id = store.claim_new("a1", item()).work_item_id
        done = store.complete(work_id, status, agent_id="a1")
        assert (done.status, done.completion_status) == ("failed", status)


def test_operator_without_agent_id_can_finish_a_held_item(store: Any) -> None:
    work_id = store.claim_new("a1", item()).work_item_id
    assert store.complete(work_id, "success", 3).status == "completed"


def test_fail_is_terminal_unless_retried(store: Any) -> None:
    work_id = store.claim_new("a1", item()).work_item_id
    got = store.fail(work_id, "boom", agent_id="a1")
    assert (got.status, got.error) == ("failed", "boom")
    retry_id = store.add_work(item(max_attempts=2))
    store.claim("a1")
    again = store.fail(retry_id, "flaky", agent_id="a1", retry=True)
    assert (again.status, again.attempts) == ("pending", 1)
    store.claim("a1")
    dead = store.fail(retry_id, "flaky", agent_id="a1", retry=True)
    assert (dead.status, dead.attempts) == ("dead", 2)


def test_release_returns_item_without_counting_an_attempt(store: Any) -> None:
    work_id = store.add_work(item())
    store.claim("a1")
    got = store.release(work_id, agent_id="a1")
    assert (got.status, got.agent_id, got.attempts) == ("pending", None, 0)
    assert store.claim("a2").work_item_id == work_id
    with pytest.raises(Conflict):
        store.release(work_id, agent_id="a1")


def test_release_agent_counts_an_attempt_and_buries_poison(store: Any) -> None:
    ids = [store.add_work(item(max_attempts=2)) for _ in range(3)]
    for _ in ids:
        store.claim("dead-agent")
    released = store.release_agent("dead-agent")
    assert sorted(i.work_item_id for i in released) == sorted(ids)
    assert all(store.get(w).status == "pending" and store.get(w).attempts == 1 for w in ids)
    store.claim("dead-again")
    (buried,) = store.release_agent("dead-again")
    assert (buried.status, buried.attempts) == ("dead", 2)
    assert store.release_agent("nobody") == []


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_dead_follows_the_one_out_of_attempts_rule(
    make_store: StoreFactory, max_attempts: int
) -> None:
    """Crashes and retried failures count attempts; both backends bury the item exactly
    when ``records.out_of_attempts`` (which the agent loop also asks) says so."""
    store = make_store(max_attempts=max_attempts)
    work_id = store.add_work(item())
    for attempt in range(1, max_attempts + 1):
        agent = f"a{attempt}"
        assert store.claim(agent).work_item_id == work_id
        if attempt % 2:
            (after,) = store.release_agent(agent)
        else:
            after = store.fail(work_id, "boom", agent_id=agent, retry=True)
        expected = "dead" if out_of_attempts(attempt, max_attempts) else "pending"
        assert (after.status, after.attempts) == (expected, attempt)
        assert store.get(work_id).status == expected
    assert store.claim("late") is None


# Lease tests move the store's clock (conftest.store_clock) instead of sleeping: a long
# lease, and steps that end well inside it or well past it, whatever the machine's load.
LEASE_S = 30.0
INSIDE = LEASE_S * 2 / 3  # a step that leaves a third of the lease
PAST = LEASE_S + 1


def test_expired_lease_returns_item_with_an_attempt(
    make_store: StoreFactory, store_clock: StoreClock
) -> None:
    store = make_store(lease_s=LEASE_S, max_attempts=2)
    work_id = store.add_work(item())
    assert store.claim("slow").work_item_id == work_id
    store_clock.advance(INSIDE)
    assert store.claim("fast") is None  # not before the lease ends
    store_clock.advance(PAST - INSIDE)
    again = store.claim("fast")
    assert again is not None and again.work_item_id == work_id and again.attempts == 1
    with pytest.raises(Conflict):
        store.complete(work_id, agent_id="slow")
    store_clock.advance(PAST)
    assert store.claim("third") is None
    got = store.get(work_id)
    assert (got.status, got.attempts) == ("dead", 2)
    assert "lease expired" in got.error


def test_sweep_reports_expired_leases(make_store: StoreFactory, store_clock: StoreClock) -> None:
    store = make_store(lease_s=LEASE_S)
    work_id = store.claim_new("a1", item()).work_item_id
    assert store.sweep() == []
    store_clock.advance(INSIDE)
    assert store.sweep() == []
    store_clock.advance(PAST - INSIDE)
    # PostgreSQL's sweep() returns [] while any process on the database (another
    # test run's supervisor too) holds the sweep lock: sweep until it has done one.
    swept = wait_for(store.sweep, timeout=30)
    assert [i.work_item_id for i in swept] == [work_id]
    assert store.get(work_id).status == "pending"
    assert store.sweep() == []


def test_heartbeat_and_progress_extend_the_lease(
    make_store: StoreFactory, store_clock: StoreClock
) -> None:
    store = make_store(lease_s=LEASE_S)
    store.register(Agent(agent_id="a1"))
    hb = store.claim_new("a1", item()).work_item_id
    pr = store.claim_new("a1", item()).work_item_id
    for _ in range(4):  # past the first lease twice over: held by heartbeats alone
        store_clock.advance(INSIDE)
        assert store.heartbeat("a1") == 2
    for _ in range(3):  # past hb's lease, which no heartbeat extends any more
        store_clock.advance(INSIDE)
        store.progress(pr, 10, agent_id="a1")
    assert store.get(pr).status == "in_progress"
    lost = store.get(hb)
    assert (lost.status, lost.agent_id, lost.attempts) == ("pending", None, 1)
    assert "lease expired" in lost.error
    with pytest.raises(Conflict):
        store.progress(hb, 20, agent_id="a1")  # the holder lost its claim
    assert store.heartbeat("a1") == 1


def test_agents_register_heartbeat_deregister(store: Any) -> None:
    agent = store.register(Agent(agent_id="a1", capacity=80, specialization="backend", team="core"))
    assert agent.registered_at > 0 and agent.last_heartbeat > 0
    assert store.get_agent("a1").specialization == "backend"
    assert [a.agent_id for a in store.list_agents()] == ["a1"]
    held = store.claim_new("a1", item()).work_item_id
    before = store.get_agent("a1").last_heartbeat
    assert store.heartbeat("a1") == 1
    assert store.get_agent("a1").last_heartbeat >= before
    store.deregister("a1")
    assert store.get(held).status == "pending"
    with pytest.raises(NotFound):
        store.get_agent("a1")
    with pytest.raises(NotFound):
        store.deregister("a1")
    with pytest.raises(NotFound):
        store.heartbeat("ghost")


def test_register_validates(store: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.register(Agent(agent_id="a1", capacity=120))
    with pytest.raises(InvalidArgument):
        store.register(Agent(agent_id="a1", status="asleep"))
    with pytest.raises(InvalidArgument):
        store.register(Agent(agent_id="../../etc/passwd"))


def test_ids_are_checked_and_unique(store: Any) -> None:
    store.add_work(item(work_id="job-1"))
    with pytest.raises(Conflict):
        store.add_work(item(work_id="job-1"))
    for bad in ("../x", "a/b", " sp", "x" * 200):
        with pytest.raises(InvalidArgument):
            store.add_work(item(work_id=bad))
    generated = store.add_work(item(work_id=""))  # no id: one is generated
    assert generated.startswith("work_") and store.get(generated).work_item_id == generated
    with pytest.raises(InvalidArgument):
        store.add_work(item(priority="urgent"))


def test_another_handle_sees_every_change(make_store: StoreFactory) -> None:
    one, two = make_store(), make_store()
    work_id = one.add_work(item())
    got = two.claim("a2")
    assert got is not None and got.work_item_id == work_id
    with pytest.raises(Conflict):
        one.complete(work_id, agent_id="a1")
    two.complete(work_id, agent_id="a2")
    assert one.get(work_id).status == "completed"


def test_list_work_orders_and_filters_terminal(store: Any) -> None:
    low = store.add_work(item(priority="low"))
    high = store.add_work(item(priority="high"))
    done = store.claim_new("a1", item(priority="critical")).work_item_id
    store.complete(done, agent_id="a1")
    assert [i.work_item_id for i in store.list_work()] == [done, high, low]
    assert [i.work_item_id for i in store.list_work(include_terminal=False)] == [high, low]


# -- work keys ---------------------------------------------------------------------------


def test_a_key_already_present_is_not_enqueued_again(store: Any) -> None:
    first = store.add_many([item(key="build:main"), item(key="test:main")])
    assert first.new == (True, True) and first.added == list(first)
    again = store.add_many([item(key="test:main"), item(key="docs:main"), item()])
    assert again[0] == first[1] and again.new == (False, True, True)
    assert again.present == [first[1]] and again.added == [again[1], again[2]]
    assert store.add_work(item(key="build:main")) == first[0]
    stored = store.list_work()
    assert len(stored) == 4
    assert sorted(i.key for i in stored if i.key) == ["build:main", "docs:main", "test:main"]
    assert store.get(first[0]).key == "build:main"
    assert store.get(first[0]).to_dict()["key"] == "build:main"


def test_a_key_stays_taken_in_every_state(store: Any) -> None:
    done = store.add_work(item(key="done"))
    store.claim("a1")
    store.complete(done, agent_id="a1")
    dead = store.add_work(item(key="dead", max_attempts=1))
    store.claim("a1")
    store.release_agent("a1")
    held = store.add_work(item(key="held"))
    store.claim("a1")
    assert [store.get(i).status for i in (done, dead, held)] == ["completed", "dead", "claimed"]
    again = store.add_many([item(key="done"), item(key="dead"), item(key="held")])
    assert list(again) == [done, dead, held] and again.new == (False, False, False)
    assert len(store.list_work()) == 3


def test_one_key_twice_in_one_batch_is_one_item(store: Any) -> None:
    got = store.add_many([item(key="k"), item(), item(key="k")])
    assert got.new == (True, True, False) and got[2] == got[0]
    assert len(store.list_work()) == 2


def test_claim_new_refuses_a_taken_key_and_keys_are_checked(store: Any) -> None:
    work_id = store.add_work(item(key="k"))
    with pytest.raises(Conflict, match=work_id):
        store.claim_new("a1", item(key="k"))
    assert store.claim_new("a1", item(key="k2")).key == "k2"
    assert store.add_work(item(key="k2")) != work_id
    for bad in ("", "line\nbreak", "x" * 513, 7):
        with pytest.raises(InvalidArgument):
            store.add_work(item(key=bad))
    odd = store.add_work(item(key="src/a b.py#2 — ünï"))
    assert store.get(odd).key == "src/a b.py#2 — ünï"
    assert len(store.list_work()) == 3


def test_another_handle_sees_the_key(make_store: StoreFactory) -> None:
    one, two = make_store(), make_store()
    work_id = one.add_work(item(key="shared"))
    assert two.add_many([item(key="shared")]).present == [work_id]
    assert len(two.list_work()) == 1


def test_a_change_reader_declares_whether_its_log_rebuilds_items(store: Any) -> None:
    """``whole_records`` (what the API's listing asks before it follows the log rather
    than list the store) holds exactly when an item folded from the log alone is the
    item the store has."""
    from orchestrator.store import journal
    from orchestrator.store.changes import Change, reader_for

    reader = reader_for(store)
    try:
        reader.seek_end()
        added = store.add_work(item())
        assert store.claim("agent_a") is not None
        changes: list[Change] = []

        def both_read() -> bool:
            changes.extend(reader.poll())
            return sum(raw["work_item_id"] == added for c in changes for raw in c.items) >= 2

        wait_for(both_read)
        folded: WorkItem | None = None
        for change in changes:
            for raw in change.items:
                if raw["work_item_id"] == added:
                    folded = journal.item_version(raw, folded)
        assert (folded is not None and folded == store.get(added)) is reader.whole_records
    finally:
        reader.close()
