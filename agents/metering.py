"""The agent's side of swarm-wide limits: wire a backend's 429s to the swarm's
admission, reconcile a reservation with the usage the call reported, and put the
item's tokens, cost and throttled waits on its span and in its result."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SwarmError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from agents.backends import Backend, Outcome
    from orchestrator.limits import Gate, Reservation
    from orchestrator.records import WorkItem

logger = logging.getLogger(__name__)


def attach(
    backend: Backend, gate: Gate | None, reservation: Reservation, stop: threading.Event
) -> None:
    """Let an LLM backend's throttled calls wait on the swarm (backends that have no
    ``throttle`` hook make no calls to limit)."""
    if gate is None or not hasattr(backend, "throttle"):
        return

    def throttled(retry_after_s: float | None, remaining: dict[str, float]) -> bool:
        try:
            return gate.throttled(reservation, retry_after_s, remaining, stop)
        except SwarmError as exc:  # the store is down: wait alone, as without limits
            logger.warning("could not share a 429 with the swarm: %s", exc)
            return not stop.wait(retry_after_s or 1.0)

    backend.throttle = throttled


def settle(gate: Gate, reservation: Reservation, item: WorkItem, outcome: Outcome) -> None:
    """Reconcile after the call; the ledger entry becomes ``outcome.details["usage"]``."""
    try:
        entry = gate.settle(
            reservation,
            work_item_id=item.work_item_id,
            model=outcome.model,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            remaining=dict(outcome.details.get("ratelimit") or {}),
            ok=outcome.ok,
        )
    except SwarmError as exc:
        # The reservation ends at its deadline; the item's work is not lost for this.
        logger.error("could not record the usage of %s: %s", item.work_item_id, exc)
        return
    outcome.details["usage"] = {
        key: entry[key]
        for key in ("model", "input_tokens", "output_tokens", "cost_usd", "throttled_waits")
    } | {"admission_wait_s": entry["admission_wait_s"]}


def annotate(span: Span, usage: dict[str, Any]) -> None:
    span.set_attribute("gen_ai.usage.input_tokens", int(usage["input_tokens"]))
    span.set_attribute("gen_ai.usage.output_tokens", int(usage["output_tokens"]))
    span.set_attribute("swarm.usage.cost_usd", float(usage["cost_usd"]))
    span.set_attribute("swarm.usage.throttled_waits", int(usage["throttled_waits"]))
    span.set_attribute("swarm.limits.wait_s", float(usage["admission_wait_s"]))
