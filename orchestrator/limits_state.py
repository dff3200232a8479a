"""The rules of swarm-wide limits and budgets over the shared documents in the store.

Pure functions of (documents, store time): the store applies them atomically (under
its file lock, or with the PostgreSQL rows locked), so every agent on every host sees
one state. Written here rather than taken from ``pyrate-limiter`` or ``limits``: those
keep their buckets in their own storage (SQLite, Redis, their own tables), which can
join neither our file lock nor our transactions; a token bucket is a few lines.

A limit's document (``limit:<name>``)::

    {"buckets": {"requests": {"level": 12.5, "at": <ts>}, "input_tokens": …},
     "held": {<reservation>: {"agent": id, "until": <ts>}},   # calls in flight
     "blocked_until": <ts>,        # a 429/529 or retry-after: nobody is admitted before
     "throttled": [<ts>, …],       # 429s of the last minute
     "waiting": {<agent>: <ts>},   # agents waiting for admission (until about then)
     "avg_input": 812.0}           # moving average of reported input tokens

A budget's document (``budget`` for the swarm, ``budget:<group>``)::

    {"spent": 1.234, "held": {<reservation>: {"agent": id, "until": <ts>, "usd": 0.01}}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.limits_config import FIGURES, LimitConfig

WINDOW_S = 60.0
CONCURRENCY_POLL_S = 0.2
DEFAULT_INPUT_TOKENS = 500.0


def limit_key(name: str) -> str:
    return f"limit:{name}"


def budget_key(group: str | None) -> str:
    return "budget" if group is None else f"budget:{group}"


@dataclass
class Ask:
    """What one call reserves: a request and its estimated tokens."""

    requests: float = 1.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0

    def of(self, figure: str) -> float:
        return float(getattr(self, figure))


@dataclass
class Verdict:
    """The outcome of one admission attempt."""

    admitted: bool
    wait_s: float = 0.0
    reason: str = ""  # which limit or budget keeps the agent waiting
    budget_exhausted: str | None = None
    asks: dict[str, Ask] = field(default_factory=dict)  # limit name -> what was reserved


def level(bucket: dict[str, float] | None, rate: float, burst_s: float, now: float) -> float:
    """Tokens in a bucket now: refilled continuously at ``rate`` per minute up to its
    capacity (``rate * burst_s / 60``); a bucket never seen is full. May be negative
    (debt) when calls used more than they reserved."""
    capacity = rate * burst_s / WINDOW_S
    if not bucket:
        return capacity
    refilled = float(bucket["level"]) + max(0.0, now - float(bucket["at"])) * rate / WINDOW_S
    return min(capacity, refilled)


def tidy(doc: dict[str, Any], now: float) -> None:
    """Drop reservations past their deadline (an agent killed on a host whose supervisor
    died too), waiters gone quiet and 429s older than a minute."""
    held = doc.setdefault("held", {})
    for res, entry in list(held.items()):
        if float(entry.get("until", 0.0)) < now:
            del held[res]
    waiting = doc.setdefault("waiting", {})
    for agent, until in list(waiting.items()):
        if float(until) < now:
            del waiting[agent]
    doc["throttled"] = [t for t in doc.get("throttled", []) if float(t) > now - WINDOW_S]


def estimate(doc: dict[str, Any], limit: LimitConfig, max_tokens: int) -> Ask:
    """A call's reservation: one request, the average input so far, ``max_tokens`` out."""
    ask = Ask()
    if "input_tokens" in limit.rates():
        ask.input_tokens = float(doc.get("avg_input", DEFAULT_INPUT_TOKENS))
    if "output_tokens" in limit.rates():
        ask.output_tokens = float(max_tokens)
    return ask


def admit(
    docs: dict[str, dict[str, Any]],
    now: float,
    *,
    limits: list[LimitConfig],
    budgets: dict[str, float],
    reservation: str,
    agent_id: str,
    ttl_s: float,
    max_tokens: int,
    estimate_usd: float = 0.0,
    again: bool = False,
) -> Verdict:
    """Reserve one call in every limit and budget, or none; ``again``: the same call is
    retried after a 429 and keeps its place among the calls in flight."""
    waits: list[tuple[float, str]] = []
    for key, max_usd in budgets.items():
        if again:
            break  # a retried call is already counted in flight
        doc = docs[key]
        tidy(doc, now)
        spent = float(doc.get("spent", 0.0))
        if spent >= max_usd:
            return Verdict(False, reason=key, budget_exhausted=key)
        # Calls in flight count at their estimate: near the boundary they go one by one,
        # so the budget is overshot by at most one call's estimation error.
        in_flight = sum(float(entry.get("usd", 0.0)) for entry in doc["held"].values())
        if in_flight and spent + in_flight + estimate_usd > max_usd:
            waits.append((CONCURRENCY_POLL_S, key))
    asks: dict[str, Ask] = {}
    for limit in limits:
        doc = docs[limit_key(limit.name)]
        tidy(doc, now)
        blocked = float(doc.get("blocked_until", 0.0))
        if blocked > now:
            waits.append((blocked - now, limit.name))
        held = doc["held"]
        if not again and limit.max_concurrent and len(held) >= limit.max_concurrent:
            waits.append((CONCURRENCY_POLL_S, limit.name))
        ask = estimate(doc, limit, max_tokens)
        asks[limit.name] = ask
        buckets = doc.setdefault("buckets", {})
        for figure, rate in limit.rates().items():
            have = level(buckets.get(figure), rate, limit.burst_s, now)
            need = min(ask.of(figure), rate * limit.burst_s / WINDOW_S)
            if have < need:
                waits.append(((need - have) * WINDOW_S / rate, limit.name))
    if waits:
        wait, reason = max(waits)
        for limit in limits:
            docs[limit_key(limit.name)]["waiting"][agent_id] = now + wait + 1.0
        return Verdict(False, wait_s=wait, reason=reason)
    for limit in limits:
        doc = docs[limit_key(limit.name)]
        buckets = doc["buckets"]
        for figure, rate in limit.rates().items():
            have = level(buckets.get(figure), rate, limit.burst_s, now)
            buckets[figure] = {"level": have - asks[limit.name].of(figure), "at": now}
        doc["held"][reservation] = {"agent": agent_id, "until": now + ttl_s}
        doc["waiting"].pop(agent_id, None)
    if not again:
        for key in budgets:
            hold = {"agent": agent_id, "until": now + ttl_s, "usd": estimate_usd}
            docs[key].setdefault("held", {})[reservation] = hold
    return Verdict(True, asks=asks)


def give_back(
    docs: dict[str, dict[str, Any]],
    now: float,
    *,
    limits: list[LimitConfig],
    reservation: str,
    refunds: dict[str, Ask],
    keep_place: bool = False,
) -> None:
    """Credit ``refunds`` (reserved minus used, per limit) to the buckets, and end the
    reservation unless ``keep_place`` (a throttled call that will be retried)."""
    for limit in limits:
        doc = docs[limit_key(limit.name)]
        buckets = doc.setdefault("buckets", {})
        refund = refunds.get(limit.name)
        for figure, rate in limit.rates().items():
            if refund is None or not refund.of(figure):
                continue
            have = level(buckets.get(figure), rate, limit.burst_s, now)
            capacity = rate * limit.burst_s / WINDOW_S
            buckets[figure] = {"level": min(capacity, have + refund.of(figure)), "at": now}
        if not keep_place:
            doc.setdefault("held", {}).pop(reservation, None)


def record_usage(doc: dict[str, Any], input_tokens: int | None) -> None:
    if input_tokens is not None:
        avg = float(doc.get("avg_input", input_tokens))
        doc["avg_input"] = round(0.8 * avg + 0.2 * input_tokens, 1)


def spend(
    docs: dict[str, dict[str, Any]], budgets: list[str], reservation: str, usd: float
) -> None:
    for key in budgets:
        doc = docs[key]
        doc["spent"] = float(doc.get("spent", 0.0)) + usd
        doc.setdefault("held", {}).pop(reservation, None)


def throttle(
    doc: dict[str, Any],
    now: float,
    limit: LimitConfig,
    retry_after_s: float | None,
    remaining: dict[str, float],
) -> None:
    """A 429/529 (``retry_after_s`` given or not) or rate-limit headers: the whole swarm
    waits, and no bucket holds more than the provider says is left."""
    if retry_after_s is not None:
        doc["throttled"] = [*doc.get("throttled", []), now]
        until = now + max(0.0, retry_after_s)
        doc["blocked_until"] = max(float(doc.get("blocked_until", 0.0)), until)
    buckets = doc.setdefault("buckets", {})
    for figure, rate in limit.rates().items():
        if figure in remaining:
            have = level(buckets.get(figure), rate, limit.burst_s, now)
            buckets[figure] = {"level": min(have, remaining[figure]), "at": now}


def drop_agent(doc: dict[str, Any], agent_id: str) -> int:
    """End a dead agent's reservations: its slots are free at once. The tokens stay
    spent: its call may have reached the provider."""
    held = doc.get("held", {})
    mine = [res for res, entry in held.items() if _holder(entry) == agent_id]
    for res in mine:
        del held[res]
    doc.get("waiting", {}).pop(agent_id, None)
    return len(mine)


def _holder(entry: Any) -> str | None:
    return entry.get("agent") if isinstance(entry, dict) else None


def view(doc: dict[str, Any], limit: LimitConfig, now: float) -> dict[str, Any]:
    """What status shows of a limit: per figure used/available, in flight, waiting,
    429s of the last minute, seconds to full."""
    tidy(doc, now)
    figures: dict[str, Any] = {}
    to_full = 0.0
    for figure in FIGURES:
        rate = limit.rates().get(figure)
        if rate is None:
            continue
        capacity = rate * limit.burst_s / WINDOW_S
        have = level(doc.get("buckets", {}).get(figure), rate, limit.burst_s, now)
        figures[figure] = {
            "available": round(have, 1),
            "used": round(capacity - have, 1),
            "capacity": capacity,
            "per_minute": rate,
        }
        to_full = max(to_full, (capacity - have) * WINDOW_S / rate)
    blocked = max(0.0, float(doc.get("blocked_until", 0.0)) - now)
    return {
        "name": limit.name,
        "backend": limit.backend,
        "model": limit.model,
        "figures": figures,
        "in_flight": len(doc.get("held", {})),
        "max_concurrent": limit.max_concurrent,
        "waiting": len(doc.get("waiting", {})),
        "throttled_last_minute": len(doc.get("throttled", [])),
        "blocked_s": round(blocked, 1),
        "reset_s": round(max(to_full, blocked), 1),
    }
