"""Swarm-wide admission: an agent reserves a call in every limit and budget that applies
to it before it claims, reconciles the reservation with the usage the API reported,
and tells the whole swarm about a 429. The state lives in the store (see
``limits_state`` for the rules and the documents), so agents in other processes and on
other hosts share it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator import limits_state as rules
from orchestrator.limits_config import LimitConfig, PriceConfig
from orchestrator.limits_state import Ask, Verdict, budget_key, limit_key
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup, SwarmConfig
    from orchestrator.store.base import Store

logger = logging.getLogger(__name__)

LLM_BACKENDS = ("claude", "ollama")
MAX_SLEEP_S = 2.0  # re-check at least this often: another agent may have given back


@dataclass(frozen=True)
class LimitsPlan:
    """What one agent group's admission needs from swarm.toml; picklable."""

    limits: tuple[LimitConfig, ...] = ()
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    swarm_budget: float | None = None
    group_budget: float | None = None

    @classmethod
    def of(cls, config: SwarmConfig, group: AgentGroup) -> LimitsPlan:
        return cls(
            tuple(config.limits),
            dict(config.prices),
            config.budget.max_usd,
            group.budget_usd,
        )

    @classmethod
    def of_swarm(cls, config: SwarmConfig) -> LimitsPlan:
        """For calls made outside any agent group (the ``[intelligence]`` model)."""
        return cls(tuple(config.limits), dict(config.prices), config.budget.max_usd, None)

    def needed(self, backend: str) -> bool:
        """An agent of ``backend`` goes through admission: LLM calls are metered."""
        return backend in LLM_BACKENDS or any(lim.backend == backend for lim in self.limits)


@dataclass(frozen=True)
class Caller:
    """Who makes metered calls when it is not an agent group: named in the ledger and
    in budgets as a group is (``[intelligence]`` calls are ``intelligence``)."""

    name: str
    backend: str
    max_tokens: int
    timeout_s: float
    retries: int = 0


@dataclass
class Reservation:
    id: str
    asks: dict[str, Ask]
    waited_s: float = 0.0
    throttled_waits: int = 0


class Gate:
    """Admission for one agent of one group."""

    def __init__(
        self,
        store: Store,
        agent_id: str,
        group: AgentGroup | Caller,
        plan: LimitsPlan,
        model: str | None,
    ) -> None:
        self.store = store
        self.agent_id = agent_id
        self.group = group
        self.plan = plan
        self.model = model
        # Which limits apply is known here: the model may come from the environment.
        self.limits = [lim for lim in plan.limits if lim.applies_to(group.backend, model)]
        self.budgets = {
            budget_key(None): plan.swarm_budget,
            budget_key(group.name): plan.group_budget,
        }
        self.names = [limit_key(lim.name) for lim in self.limits] + list(self.budgets)
        # A reservation outlives a call by far: it is ended by the agent, or by the
        # supervisor when the agent dies; the deadline covers hosts whose supervisor died.
        self.ttl_s = group.timeout_s * (group.retries + 2) + 60.0
        self.exhausted: str | None = None

    def _caps(self) -> dict[str, float]:
        return {key: cap for key, cap in self.budgets.items() if cap is not None}

    def _estimate_usd(self, docs: dict[str, dict[str, Any]]) -> float:
        """A call's cost before it is made: the average input so far, ``max_tokens`` out."""
        if not self._caps():
            return 0.0
        inputs = [float(docs[limit_key(lim.name)].get("avg_input", 0.0)) for lim in self.limits]
        avg_input = max(inputs, default=0.0) or rules.DEFAULT_INPUT_TOKENS
        return self.cost(self.model, int(avg_input), self.group.max_tokens)

    def _try(self, reservation: str, again: bool) -> Verdict:
        def change(docs: dict[str, dict[str, Any]], now: float) -> Verdict:
            return rules.admit(
                docs,
                now,
                limits=self.limits,
                budgets=self._caps(),
                reservation=reservation,
                agent_id=self.agent_id,
                ttl_s=self.ttl_s,
                max_tokens=self.group.max_tokens,
                estimate_usd=self._estimate_usd(docs),
                again=again,
            )

        return self.store.update_shared(self.names, change)

    def admit(
        self,
        stop: threading.Event,
        again: Reservation | None = None,
        *,
        give_up_on_budget: bool = False,
    ) -> Reservation | None:
        """Wait until every limit and budget admits one call; None once ``stop`` is set
        (or at once on an exhausted budget with ``give_up_on_budget``: callers that have
        a plain fallback). Holds no work item while it waits; the wait is a span when it
        was one."""
        started = time.monotonic()
        start_ns = time.time_ns()
        res_id = again.id if again is not None else uuid.uuid4().hex[:16]
        reasons: set[str] = set()
        while not stop.is_set():
            verdict = self._try(res_id, again is not None)
            if verdict.admitted:
                if self.exhausted:
                    logger.info("budget %s allows work again", self.exhausted)
                    self.exhausted = None
                waited = time.monotonic() - started
                if reasons:
                    self._span(start_ns, waited, reasons, again is not None)
                if again is not None:
                    again.asks = verdict.asks
                    again.waited_s += waited
                    return again
                return Reservation(res_id, verdict.asks, waited)
            reasons.add(verdict.reason)
            if verdict.budget_exhausted:
                if give_up_on_budget:
                    self.exhausted = verdict.budget_exhausted
                    return None
                if self.exhausted != verdict.budget_exhausted:
                    logger.warning(
                        "budget %s is exhausted: not claiming (raise it in swarm.toml)",
                        verdict.budget_exhausted,
                    )
                self.exhausted = verdict.budget_exhausted
                stop.wait(1.0)
                continue
            # Jitter, so waiters for one refill do not all ask the store at once.
            stop.wait(min(verdict.wait_s, MAX_SLEEP_S) + random.uniform(0.0, 0.05))
        return None

    def _span(self, start_ns: int, waited: float, reasons: set[str], again: bool) -> None:
        if not tracing.enabled():
            return
        span = tracing.tracer().start_span(
            "gen_ai.client.admission",
            start_time=start_ns,
            attributes={
                "swarm.agent.id": self.agent_id,
                "swarm.limits.waited_by": sorted(reasons),
                "swarm.limits.wait_s": round(waited, 3),
                "swarm.limits.after_throttle": again,
            },
        )
        span.end()

    def release(self, res: Reservation) -> None:
        """No call was made (no item to claim, or the call never left): give it all back."""

        def change(docs: dict[str, dict[str, Any]], now: float) -> None:
            rules.give_back(docs, now, limits=self.limits, reservation=res.id, refunds=res.asks)
            for key in self.budgets:
                docs[key].setdefault("held", {}).pop(res.id, None)

        self.store.update_shared(self.names, change)

    def throttled(
        self,
        res: Reservation,
        retry_after_s: float | None,
        remaining: dict[str, float],
        stop: threading.Event,
    ) -> bool:
        """A 429/529 answer: the swarm waits out ``retry_after_s`` (1 s when not said);
        the tokens of the refused call are given back and the call waits for admission
        again, keeping its place in flight. False when the agent stops meanwhile."""
        res.throttled_waits += 1
        refunds = {
            name: Ask(0.0, ask.input_tokens, ask.output_tokens) for name, ask in res.asks.items()
        }
        pause = 1.0 if retry_after_s is None else retry_after_s

        def change(docs: dict[str, dict[str, Any]], now: float) -> None:
            for limit in self.limits:
                rules.throttle(docs[limit_key(limit.name)], now, limit, pause, remaining)
            rules.give_back(
                docs, now, limits=self.limits, reservation=res.id, refunds=refunds, keep_place=True
            )

        self.store.update_shared(self.names, change)
        if not self.limits:
            stop.wait(pause)  # nothing shared to wait on: back off alone
            return not stop.is_set()
        return self.admit(stop, again=res) is not None

    def settle(
        self,
        res: Reservation,
        *,
        work_item_id: str,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        remaining: dict[str, float],
        ok: bool,
    ) -> dict[str, Any]:
        """After the call: replace the estimate by the reported usage, add the cost to the
        budgets and the ledger, in one store step. Returns the ledger entry."""
        used_in = input_tokens or 0
        used_out = output_tokens or 0
        cost = self.cost(model, used_in, used_out)
        refunds = {
            name: Ask(
                0.0,
                ask.input_tokens - used_in if ask.input_tokens else 0.0,
                ask.output_tokens - used_out if ask.output_tokens else 0.0,
            )
            for name, ask in res.asks.items()
        }
        entry = {
            "work_item_id": work_item_id,
            "agent_id": self.agent_id,
            "group": self.group.name,
            "backend": self.group.backend,
            "model": model or self.model,
            "input_tokens": used_in,
            "output_tokens": used_out,
            "cost_usd": round(cost, 8),
            "throttled_waits": res.throttled_waits,
            "admission_wait_s": round(res.waited_s, 3),
            "ok": ok,
        }

        def change(docs: dict[str, dict[str, Any]], now: float) -> None:
            rules.give_back(docs, now, limits=self.limits, reservation=res.id, refunds=refunds)
            for limit in self.limits:
                doc = docs[limit_key(limit.name)]
                rules.record_usage(doc, input_tokens)
                rules.throttle(doc, now, limit, None, remaining)
            rules.spend(docs, list(self.budgets), res.id, cost)

        self.store.update_shared(self.names, change, ledger=entry)
        return entry

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        """Priced by the model asked for, else the model that answered; unpriced: 0."""
        for name in (self.model, model):
            if name and name in self.plan.prices:
                return self.plan.prices[name].cost(input_tokens, output_tokens)
        return 0.0


def drop_agent(store: Store, config: SwarmConfig, agent_id: str) -> int:
    """A dead agent's reservations end at once (its slots free); return how many."""
    names = [limit_key(lim.name) for lim in config.limits]
    names += [budget_key(None)] + [budget_key(g.name) for g in config.agents]

    def change(docs: dict[str, dict[str, Any]], now: float) -> int:
        return sum(rules.drop_agent(doc, agent_id) for doc in docs.values())

    return store.update_shared(names, change)


def status(store: Store, config: SwarmConfig) -> dict[str, Any]:
    """Each limit's figures and each budget's spending, as ``swarm limits`` shows them."""
    by_name = {limit_key(lim.name): lim for lim in config.limits}
    budgets = {budget_key(None): config.budget.max_usd}
    budgets |= {budget_key(g.name): g.budget_usd for g in config.agents if g.budget_usd}
    names = list(by_name) + list(budgets)

    def change(docs: dict[str, dict[str, Any]], now: float) -> dict[str, Any]:
        views = [rules.view(dict(docs[key]), lim, now) for key, lim in by_name.items()]
        spent = []
        for key, cap in budgets.items():
            used = float(docs[key].get("spent", 0.0))
            spent.append(
                {
                    "budget": key,
                    "max_usd": cap,
                    "spent_usd": round(used, 6),
                    "exhausted": cap is not None and used >= cap,
                }
            )
        return {"limits": views, "budgets": spent}

    return store.update_shared(names, change)


def status_if_configured(store: Store | None, config: SwarmConfig) -> dict[str, Any] | None:
    """``status`` for ``swarm status``: None when swarm.toml sets no limit or budget."""
    budgets = config.budget.max_usd is not None or any(g.budget_usd for g in config.agents)
    if store is None or not (config.limits or budgets):
        return None
    return status(store, config)
