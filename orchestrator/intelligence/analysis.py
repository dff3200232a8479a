"""``swarm analyze priorities|assignments|health|team``: the model's structured reading
of the queue, written where SwarmSH wrote it (``claude_*.json``).

Each kind has a pydantic schema (the README shows them). The report always has the
facts it was built from; ``analysis`` is the model's validated answer, or null with
``fallback`` saying why (the command still succeeds: no analysis is the plain
behaviour). Suggested priority changes are applied only when asked (``--apply``).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from orchestrator.intelligence.ask import ask
from orchestrator.records import ACTIVE_STATUSES, PRIORITIES, WorkStatus
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import IntelligenceSettings
    from orchestrator.records import Agent, WorkItem

Priority = Literal["critical", "high", "medium", "low"]


class PriorityChange(BaseModel):
    work_item_id: str
    current: Priority
    suggested: Priority
    reason: str = ""


class PriorityAnalysis(BaseModel):
    summary: str
    changes: list[PriorityChange] = Field(default_factory=list)
    risks: list[str] = Field(default_factory=list)


class Assignment(BaseModel):
    agent_id: str
    work_item_ids: list[str]
    reason: str = ""


class AssignmentPlan(BaseModel):
    summary: str
    assignments: list[Assignment] = Field(default_factory=list)
    bottlenecks: list[str] = Field(default_factory=list)


class HealthIssue(BaseModel):
    severity: Literal["low", "medium", "high", "critical"]
    description: str
    recommendation: str


class HealthAnalysis(BaseModel):
    summary: str
    score: int = Field(ge=0, le=100)
    status: Literal["excellent", "good", "fair", "critical"]
    issues: list[HealthIssue] = Field(default_factory=list)


class TeamLoad(BaseModel):
    team: str
    agents: int = Field(ge=0)
    active_items: int = Field(ge=0)
    load: Literal["under", "balanced", "over"]
    recommendation: str = ""


class TeamAnalysis(BaseModel):
    summary: str
    teams: list[TeamLoad] = Field(default_factory=list)


KINDS: dict[str, tuple[type[BaseModel], str, str]] = {
    "priorities": (
        PriorityAnalysis,
        "claude_priority_analysis.json",
        "Review the priorities of the live work items; suggest changes only where the"
        " description clearly warrants a different priority.",
    ),
    "assignments": (
        AssignmentPlan,
        "claude_optimization_results.json",
        "Suggest which agents should take which pending items, by specialization, team and"
        " current load; name bottlenecks.",
    ),
    "health": (
        HealthAnalysis,
        "claude_health_analysis.json",
        "Assess the swarm's health from the queue, the agents and the health report;"
        " list issues with a severity and a concrete recommendation.",
    ),
    "team": (
        TeamAnalysis,
        "claude_team_analysis.json",
        "Assess each team's load: agents against live items; recommend rebalancing.",
    ),
}


def _item_row(item: WorkItem) -> dict[str, Any]:
    return {
        "work_item_id": item.work_item_id,
        "work_type": item.work_type,
        "priority": item.priority,
        "team": item.team,
        "status": item.status,
        "agent_id": item.agent_id,
        "description": item.description[:200],
    }


def facts(
    items: list[WorkItem],
    agents: list[Agent],
    health: dict[str, Any] | None,
    limit: int = 100,
) -> dict[str, Any]:
    """What the model is shown (and what the report keeps): live items in claim order,
    agents, counts by status and team, and for health the computed score."""
    live = sorted(
        (i for i in items if i.status in ACTIVE_STATUSES),
        key=lambda i: (PRIORITIES.get(i.priority, 9), i.created_at),
    )
    teams: Counter[str] = Counter(i.team or "-" for i in live)
    data: dict[str, Any] = {
        "counts": dict(Counter(str(i.status) for i in items)),
        "live_by_team": dict(teams),
        "held": sum(1 for i in live if i.held),
        "pending": sum(1 for i in live if i.status == WorkStatus.PENDING),
        "items": [_item_row(i) for i in live[:limit]],
        "agents": [
            {
                "agent_id": a.agent_id,
                "role": a.role,
                "specialization": a.specialization,
                "team": a.team,
                "status": a.status,
            }
            for a in agents
        ],
    }
    if health is not None:
        data["health"] = {
            key: health.get(key) for key in ("health_score", "status", "issue_breakdown")
        }
    return data


def analyze(
    kind: str, settings: IntelligenceSettings, data: dict[str, Any], meter: Meter | None = None
) -> dict[str, Any]:
    """The report of one kind: the facts, the model's answer (or null) and why not."""
    schema, _, task = KINDS[kind]
    with tracing.tracer().start_as_current_span(
        "swarmsh.intelligence.analyze",
        attributes={
            "swarm.intelligence.kind": kind,
            "gen_ai.system": settings.backend,
            "gen_ai.request.model": settings.model,
        },
    ) as span:
        answer = ask(
            settings,
            "You analyse a swarm of agents that share a work queue. " + task,
            json.dumps(data, indent=1, default=str),
            schema,
            use_cache=True,
            meter=meter,
            purpose=f"intelligence.analyze.{kind}",
        )
        span.set_attribute("swarm.intelligence.cached", answer.cached)
        if answer.value is None:
            span.set_attribute("swarm.intelligence.fallback", answer.reason[:300])
    return {
        "kind": kind,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": settings.backend,
        "model": settings.model,
        "analysis": answer.value.model_dump() if answer.value is not None else None,
        "fallback": answer.reason or None,
        "cached": answer.cached,
        "input": {k: v for k, v in data.items() if k != "items"}
        | {"items_shown": len(data["items"])},
    }


def applicable(report: dict[str, Any], items: dict[str, WorkItem]) -> list[PriorityChange]:
    """The suggested changes that still make sense: a live item whose priority is still
    the one the model saw, and a real change."""
    analysis = report.get("analysis")
    if report["kind"] != "priorities" or not analysis:
        return []
    changes = [PriorityChange.model_validate(c) for c in analysis["changes"]]
    return [
        c
        for c in changes
        if c.work_item_id in items
        and items[c.work_item_id].status in ACTIVE_STATUSES
        and items[c.work_item_id].priority == c.current
        and c.suggested != c.current
    ]


def run_analysis(context: Context, kind: str, apply: bool = False) -> tuple[dict[str, Any], str]:
    """``swarm analyze KIND``: the report, written to its claude_*.json; (report, path).
    ``apply``: make the suggested priority changes that still hold."""
    from pathlib import Path

    from orchestrator.errors import InvalidArgument
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import resolve_intelligence
    from orchestrator.maintenance.tasks import compute_health
    from orchestrator.runstate import write_json

    if kind not in KINDS:
        raise InvalidArgument(f"analyze {kind!r}: use one of {', '.join(KINDS)}")
    if apply and kind != "priorities":
        raise InvalidArgument("--apply applies priority changes: use it with analyze priorities")
    store = context.store()  # with spans: the analysis span records any fallback
    items = store.list_work(include_terminal=True)
    agents = store.list_agents()
    health = None
    if kind == "health":
        report = compute_health(store, context.telemetry, context.agents_dir, time.time())
        health = report.to_dict()
    settings = resolve_intelligence(context.config)
    meter = Meter.for_swarm(store, f"analyze-{os.getpid()}", context.config, settings)
    result = analyze(kind, settings, facts(items, agents, health), meter)
    if kind == "priorities":
        changes = applicable(result, {item.work_item_id: item for item in items})
        result["applied"] = []
        for change in changes if apply else []:
            store.reprioritize(change.work_item_id, change.suggested)
            result["applied"].append(change.model_dump())
    base = context.config.base_dir if context.config is not None else Path.cwd()
    path = base / KINDS[kind][1]
    write_json(path, result)
    return result, str(path)
