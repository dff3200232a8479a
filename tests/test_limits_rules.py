"""The token-bucket and budget rules of swarm-wide admission, as pure functions of the
shared documents and the store's time (the stores and processes are in test_limits)."""

from __future__ import annotations

from typing import Any

from orchestrator.limits_config import LimitConfig
from orchestrator.limits_state import Ask, admit, drop_agent, give_back, level, throttle, view

LIMIT = LimitConfig(
    name="p", backend="claude", requests_per_minute=60, input_tokens_per_minute=600, burst_s=2
)


def _docs() -> dict[str, dict[str, Any]]:
    return {"limit:p": {}, "budget": {}}


def _admit(docs: dict[str, dict[str, Any]], now: float, res: str, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "limits": [LIMIT],
        "budgets": {},
        "reservation": res,
        "agent_id": f"agent-{res}",
        "ttl_s": 100.0,
        "max_tokens": 5,
    }
    return admit(docs, now, **(options | kw))


def test_a_bucket_starts_full_and_refills_continuously_up_to_its_capacity() -> None:
    assert level(None, 60, 2, 0.0) == 2.0
    assert level({"level": 0.0, "at": 10.0}, 60, 2, 10.5) == 0.5
    assert level({"level": 0.0, "at": 10.0}, 60, 2, 99.0) == 2.0
    assert level({"level": -3.0, "at": 10.0}, 60, 2, 11.0) == -2.0  # debt is paid first


def test_admission_takes_from_every_bucket_and_says_how_long_to_wait() -> None:
    docs = _docs()
    docs["limit:p"]["avg_input"] = 10.0
    assert _admit(docs, 100.0, "a").admitted
    assert _admit(docs, 100.0, "b").admitted
    late = _admit(docs, 100.0, "c")  # the 2-request burst is used up
    assert not late.admitted and late.reason == "p" and abs(late.wait_s - 1.0) < 1e-9
    assert docs["limit:p"]["waiting"] == {"agent-c": 102.0}
    assert _admit(docs, 101.0, "c").admitted
    assert set(docs["limit:p"]["held"]) == {"a", "b", "c"}


def test_reconciling_gives_back_what_a_call_did_not_use_and_debt_delays() -> None:
    docs = _docs()
    docs["limit:p"]["avg_input"] = 10.0
    verdict = _admit(docs, 0.0, "a")
    assert docs["limit:p"]["buckets"]["input_tokens"]["level"] == 10.0  # 20 - 10
    # The call used 30 input tokens, not 10: the bucket goes 20 below what it held.
    refund = {"p": Ask(0.0, verdict.asks["p"].input_tokens - 30, 0.0)}
    give_back(docs, 0.0, limits=[LIMIT], reservation="a", refunds=refund)
    assert docs["limit:p"]["buckets"]["input_tokens"]["level"] == -10.0
    assert docs["limit:p"]["held"] == {}
    assert not _admit(docs, 1.0, "b").admitted  # -10 + 10/s: still short of 10


def test_a_429_blocks_everyone_until_retry_after_and_headers_lower_the_buckets() -> None:
    docs = _docs()
    throttle(docs["limit:p"], 50.0, LIMIT, 3.0, {"requests": 0})
    blocked = _admit(docs, 51.0, "a")
    assert not blocked.admitted and abs(blocked.wait_s - 2.0) < 1e-9
    assert view(docs["limit:p"], LIMIT, 51.0)["throttled_last_minute"] == 1
    assert _admit(docs, 53.0, "a").admitted  # the bucket refilled meanwhile
    assert view(docs["limit:p"], LIMIT, 200.0)["throttled_last_minute"] == 0


def test_concurrency_and_a_dead_agents_slot() -> None:
    one = LimitConfig(name="p", backend="claude", max_concurrent=1)
    docs = _docs()
    assert _admit(docs, 0.0, "a", limits=[one]).admitted
    assert not _admit(docs, 0.0, "b", limits=[one]).admitted
    assert drop_agent(docs["limit:p"], "agent-a") == 1
    assert _admit(docs, 0.0, "b", limits=[one]).admitted
    # A reservation whose deadline passed (its host's supervisor died too) ends alone.
    assert _admit(docs, 101.0, "c", limits=[one]).admitted


def test_a_budget_admits_while_spent_plus_calls_in_flight_stay_below_it() -> None:
    docs = _docs()
    caps = {"budget": 0.05}
    for res in ("a", "b", "c", "d"):
        assert _admit(docs, 0.0, res, limits=[], budgets=caps, estimate_usd=0.01).admitted
    docs["budget"]["spent"] = 0.0
    fifth = _admit(docs, 0.0, "e", limits=[], budgets=caps, estimate_usd=0.02)
    assert not fifth.admitted and fifth.budget_exhausted is None  # wait for those in flight
    docs["budget"] = {"spent": 0.05, "held": {}}
    spent = _admit(docs, 0.0, "e", limits=[], budgets=caps, estimate_usd=0.01)
    assert not spent.admitted and spent.budget_exhausted == "budget"
