"""Prometheus families of the limits feature: the ledger's calls, tokens, cost and
throttled waits (counters), and each limit's and budget's state now (gauges). Served on
the supervisor's ``/metrics`` beside the swarm's own families."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orchestrator.limits import status

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig
    from orchestrator.store.base import Store


def limit_metrics(store: Store, config: SwarmConfig) -> Iterator[Metric]:
    labels = ["group", "model"]
    calls = CounterMetricFamily("swarm_llm_calls", "Metered LLM calls (ledger)", labels=labels)
    cost = CounterMetricFamily("swarm_llm_cost_usd", "Cost of LLM calls in US$", labels=labels)
    tokens = CounterMetricFamily(
        "swarm_llm_ledger_tokens", "LLM tokens (ledger)", labels=[*labels, "type"]
    )
    throttled = CounterMetricFamily(
        "swarm_llm_throttled_waits", "Calls answered 429/529 and waited", labels=labels
    )
    totals: dict[tuple[str, str], list[float]] = {}
    for entry in store.ledger():
        key = (str(entry.get("group") or "-"), str(entry.get("model") or "-"))
        row = totals.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += float(entry.get("cost_usd") or 0.0)
        row[2] += float(entry.get("input_tokens") or 0)
        row[3] += float(entry.get("output_tokens") or 0)
        row[4] += float(entry.get("throttled_waits") or 0)
    for (group, model), row in sorted(totals.items()):
        calls.add_metric([group, model], row[0])
        cost.add_metric([group, model], row[1])
        tokens.add_metric([group, model, "input"], row[2])
        tokens.add_metric([group, model, "output"], row[3])
        throttled.add_metric([group, model], row[4])
    yield from (calls, cost, tokens, throttled)
    if not config.limits and config.budget.max_usd is None:
        return
    now = status(store, config)
    available = GaugeMetricFamily(
        "swarm_limit_available", "What a limit's bucket holds now", labels=["limit", "figure"]
    )
    in_flight = GaugeMetricFamily("swarm_limit_in_flight", "Calls in flight", labels=["limit"])
    waiting = GaugeMetricFamily(
        "swarm_limit_waiting_agents", "Agents waiting for admission", labels=["limit"]
    )
    recent = GaugeMetricFamily(
        "swarm_limit_throttled_last_minute", "429/529 answers in the last minute", labels=["limit"]
    )
    for view in now["limits"]:
        for figure, values in view["figures"].items():
            available.add_metric([view["name"], figure], values["available"])
        in_flight.add_metric([view["name"]], view["in_flight"])
        waiting.add_metric([view["name"]], view["waiting"])
        recent.add_metric([view["name"]], view["throttled_last_minute"])
    spent = GaugeMetricFamily("swarm_budget_spent_usd", "Spent of a budget", labels=["budget"])
    for budget in now["budgets"]:
        spent.add_metric([budget["budget"]], budget["spent_usd"])
    yield from (available, in_flight, waiting, recent, spent)
