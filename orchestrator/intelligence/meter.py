"""The ``[intelligence]`` model's calls under the swarm's ``[[limits]]`` and budgets:
admitted as an agent's call is, settled into the ledger (group ``intelligence``), so a
provider's limit and a budget count every call the swarm makes, not only its agents'.

The model is optional help: where an agent would wait, it waits at most the model's
``timeout_s`` for admission and then falls back to the plain behaviour; an exhausted
budget falls back at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from orchestrator.errors import SwarmError
from orchestrator.limits import Caller, Gate, LimitsPlan, Reservation

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig
    from orchestrator.intelligence.settings import IntelligenceSettings
    from orchestrator.store.base import Store

logger = logging.getLogger(__name__)

GROUP = "intelligence"


@dataclass
class Usage:
    """What the provider reported for one call (None: it did not say)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


class Meter:
    def __init__(
        self, store: Store, agent_id: str, plan: LimitsPlan, settings: IntelligenceSettings
    ) -> None:
        caller = Caller(GROUP, settings.backend, settings.max_tokens, settings.timeout_s)
        self.gate = Gate(store, agent_id, caller, plan, settings.model)
        self.timeout_s = settings.timeout_s

    @classmethod
    def of(
        cls,
        store: Store | None,
        agent_id: str,
        plan: LimitsPlan | None,
        settings: IntelligenceSettings,
    ) -> Meter | None:
        if store is None or plan is None:
            return None
        # Its own group in the ledger: the swarm's budget counts it, no group's does.
        return cls(store, agent_id, replace(plan, group_budget=None), settings)

    @classmethod
    def for_swarm(
        cls,
        store: Store | None,
        agent_id: str,
        config: SwarmConfig | None,
        settings: IntelligenceSettings,
    ) -> Meter | None:
        plan = LimitsPlan.of_swarm(config) if config is not None else None
        return cls.of(store, agent_id, plan, settings)

    def admit(self) -> tuple[Reservation | None, str]:
        """A reservation, or none and why (the fallback's reason)."""
        waited_out = threading.Event()
        timer = threading.Timer(self.timeout_s, waited_out.set)
        timer.daemon = True
        timer.start()
        try:
            reservation = self.gate.admit(waited_out, give_up_on_budget=True)
        except SwarmError as exc:  # the store is down: the model's help is not worth failing
            return None, f"limits unavailable: {exc}"
        finally:
            timer.cancel()
        if reservation is not None:
            return reservation, ""
        if self.gate.exhausted:
            return None, f"budget {self.gate.exhausted} is exhausted"
        return None, f"limits: not admitted within {self.timeout_s:g}s"

    def settle(self, reservation: Reservation, purpose: str, usage: Usage, ok: bool) -> None:
        try:
            self.gate.settle(
                reservation,
                work_item_id=purpose,
                model=usage.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                remaining={},
                ok=ok,
            )
        except SwarmError as exc:  # the reservation ends at its deadline
            logger.error("could not record the usage of an intelligence call: %s", exc)
