"""``claim = "intelligent"``: the model picks, among the top K pending items an agent may
claim, the one that best fits the agent's role and specialization.

The claim itself stays the store's: ``claim_id`` of the chosen item, atomic as any
claim. If another agent took it first, the next items in priority order are tried the
same way, then the plain claim. One span, ``swarmsh.intelligence.claim``, says what the
model chose, or why its answer was not used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from orchestrator.intelligence.ask import ask
from orchestrator.records import PRIORITIES, ClaimFilter, WorkItem, WorkStatus
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import IntelligenceSettings
    from orchestrator.store.base import Store

SYSTEM = (
    "You assign work in a swarm of agents. Pick the one pending work item that best fits"
    " the agent's role and specialization; prefer higher priority when the fit is equal."
)


class Choice(BaseModel):
    """The model's pick."""

    work_item_id: str = Field(description="the id of the chosen item, one of the candidates")
    reason: str = Field(default="", description="one sentence: why this item")


def candidates(store: Store, filters: ClaimFilter, top_k: int) -> list[WorkItem]:
    """The first ``top_k`` pending items the agent may claim, in claim order."""
    pending = [
        item
        for item in store.list_work(include_terminal=False)
        if item.status == WorkStatus.PENDING and filters.accepts(item.work_type, item.team)
    ]
    pending.sort(key=lambda i: (PRIORITIES.get(i.priority, 9), i.created_at, i.work_item_id))
    return pending[:top_k]


def prompt_for(agent: dict[str, str | None], items: list[WorkItem]) -> str:
    rows = [
        {
            "work_item_id": item.work_item_id,
            "work_type": item.work_type,
            "priority": item.priority,
            "team": item.team,
            "description": item.description[:300],
        }
        for item in items
    ]
    return f"Agent: {json.dumps(agent)}\nCandidates:\n{json.dumps(rows, indent=1)}"


def intelligent_claim(
    store: Store,
    agent_id: str,
    filters: ClaimFilter,
    settings: IntelligenceSettings,
    *,
    role: str | None = None,
    specialization: str | None = None,
    team: str | None = None,
    use_cache: bool = True,
    meter: Meter | None = None,
) -> WorkItem | None:
    """Claim the model's choice for this agent, or fall back to priority order."""
    items = candidates(store, filters, settings.top_k)
    if not items:
        return None  # an empty poll is no operation: idle agents poll a lot, unrecorded
    with tracing.tracer().start_as_current_span(
        "swarmsh.intelligence.claim",
        attributes={
            "swarm.agent.id": agent_id,
            "gen_ai.system": settings.backend,
            "gen_ai.request.model": settings.model,
        },
    ) as span:
        span.set_attribute("swarm.intelligence.candidates", len(items))
        order = list(items)
        fallback = ""
        if len(items) == 1:
            fallback = "one candidate: nothing to choose"
        else:
            agent = {"agent_id": agent_id, "role": role, "specialization": specialization}
            agent["team"] = team
            answer = ask(
                settings,
                SYSTEM,
                prompt_for(agent, items),
                Choice,
                use_cache=use_cache,
                meter=meter,
                purpose="intelligence.claim",
            )
            span.set_attribute("swarm.intelligence.cached", answer.cached)
            by_id = {item.work_item_id: item for item in items}
            if answer.value is None:
                fallback = answer.reason
            elif answer.value.work_item_id not in by_id:
                fallback = f"chose {answer.value.work_item_id[:80]!r}, not a candidate"
            else:
                chosen = by_id[answer.value.work_item_id]
                order = [chosen, *(i for i in items if i is not chosen)]
                span.set_attribute("swarm.intelligence.chosen", chosen.work_item_id)
                span.set_attribute("swarm.intelligence.reason", answer.value.reason[:300])
        if fallback:
            span.set_attribute("swarm.intelligence.fallback", fallback[:300])
        for position, item in enumerate(order):
            claimed = store.claim_id(agent_id, item.work_item_id)
            if claimed is not None:
                span.set_attribute("swarm.work.id", claimed.work_item_id)
                if position:
                    span.set_attribute("swarm.intelligence.taken_meanwhile", True)
                return claimed
        # Every candidate was taken meanwhile: the plain claim of whatever is next.
        span.set_attribute("swarm.intelligence.taken_meanwhile", True)
        claimed = store.claim(agent_id, filters)
        if claimed is not None:
            span.set_attribute("swarm.work.id", claimed.work_item_id)
        return claimed


def claim_for(
    context: Context, store: Store, agent_id: str, filters: ClaimFilter
) -> WorkItem | None:
    """``swarm claim --next --intelligent``: the agent's registered role and
    specialization (if it registered) guide the choice."""
    from orchestrator.errors import NotFound
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import resolve_intelligence

    role: str | None = None
    specialization: str | None = None
    team: str | None = None
    try:
        agent = store.get_agent(agent_id)
        role, specialization, team = agent.role, agent.specialization, agent.team
    except NotFound:
        pass  # an operator claiming for an agent that never registered
    settings = resolve_intelligence(context.config)
    return intelligent_claim(
        store,
        agent_id,
        filters,
        settings,
        role=role,
        specialization=specialization,
        team=team,
        meter=Meter.for_swarm(store, agent_id, context.config, settings),
    )
