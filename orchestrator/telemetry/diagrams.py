"""Mermaid diagrams of the live swarm: item flow, agents and what they hold, work by
status, and a timeline of recent operations. Text in, text out: no Mermaid needed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator.records import HELD_STATUSES, WorkStatus

if TYPE_CHECKING:
    from orchestrator.telemetry.observe import Observation

KINDS = ("flow", "agents", "work", "timeline")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

# The item lifecycle: (from, to, what moves it).
TRANSITIONS = (
    ("[*]", "pending", "add"),
    ("pending", "claimed", "claim"),
    ("claimed", "in_progress", "progress"),
    ("in_progress", "blocked", "progress blocked"),
    ("in_progress", "completed", "complete"),
    ("in_progress", "pending", "fail (retry) / release"),
    ("claimed", "pending", "lease expired / agent died"),
    ("in_progress", "dead", "fail (last attempt)"),
    ("in_progress", "failed", "complete failed"),
    ("[*]", "blocked", "add --after"),
    ("blocked", "pending", "parents completed"),
    ("blocked", "cancelled", "a parent gave up / cancel"),
    ("pending", "cancelled", "cancel"),
    ("dead", "pending", "retry"),
    ("completed", "[*]", ""),
    ("dead", "[*]", ""),
    ("failed", "[*]", ""),
    ("cancelled", "[*]", ""),
)


def node_id(text: str) -> str:
    """A Mermaid node id: letters, digits and underscores, never starting with a digit."""
    clean = _UNSAFE.sub("_", text)
    return clean if clean[:1].isalpha() else f"n_{clean}"


def label(text: Any) -> str:
    """Text safe inside a quoted Mermaid label."""
    return str(text).replace('"', "'").replace("\n", " ").replace("#", "").replace(";", ",")


def flow(observation: Observation) -> str:
    counts = observation.by_status()
    lines = ["stateDiagram-v2"]
    states = list(WorkStatus)
    for state in states:
        lines.append(f'    state "{state} ({counts.get(state, 0)})" as {state}')
    for source, target, why in TRANSITIONS:
        lines.append(f"    {source} --> {target}" + (f": {label(why)}" if why else ""))
    return "\n".join(lines) + "\n"


def agents(observation: Observation) -> str:
    held: dict[str, list[str]] = {}
    for item in observation.items:
        if item.status in HELD_STATUSES and item.agent_id:
            held.setdefault(item.agent_id, []).append(item.work_item_id)
    lines = ["flowchart LR"]
    by_team: dict[str, list[Any]] = {}
    for agent in observation.agents:
        by_team.setdefault(agent.team or agent.specialization or "agents", []).append(agent)
    for team, members in sorted(by_team.items()):
        lines.append(f'    subgraph {node_id("team_" + team)}["{label(team)}"]')
        for agent in members:
            name = label(observation.name_of(agent.agent_id))
            lines.append(
                f'        {node_id(agent.agent_id)}["{name}<br/>'
                f'{label(agent.specialization)} · {label(agent.status)}"]'
            )
        lines.append("    end")
    items = {item.work_item_id: item for item in observation.items}
    for agent_id, work_ids in sorted(held.items()):
        for work_id in sorted(work_ids):
            item = items[work_id]
            lines.append(
                f'    {node_id(work_id)}(["{label(item.work_type)}: {label(work_id)}'
                f'<br/>{label(item.status)} {item.progress}%"])'
            )
            lines.append(f"    {node_id(agent_id)} -->|holds| {node_id(work_id)}")
    if len(lines) == 1:
        lines.append('    empty["no agents registered"]')
    return "\n".join(lines) + "\n"


def work(observation: Observation) -> str:
    """The dependency graph with each item's state when items have parents, else the
    items by status."""
    if any(item.parents for item in observation.items):
        from orchestrator.pipeline_view import mermaid

        return mermaid(observation.items)
    counts = observation.by_status()
    lines = ["pie showData", f"    title Work items by status ({len(observation.items)})"]
    for status, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        lines.append(f'    "{label(status)}" : {count}')
    if not counts:
        lines.append('    "none" : 0')
    return "\n".join(lines) + "\n"


def timeline(spans: list[dict[str, Any]], names: dict[str, str] | None = None) -> str:
    """Recent operations, oldest first: who asked the store (or a model) for what.
    Agents appear by their supervisor slot name (``names``: agent id -> name) when known."""
    names = names or {}
    lines = ["sequenceDiagram", "    participant store as Store"]
    actors: dict[str, str] = {}
    body: list[str] = []
    for span in spans:
        attributes = span.get("attributes") or {}
        resource = span.get("resource") or {}
        name = str(span.get("name", "?"))
        role = str(resource.get("swarm.role") or "cli")
        if role == "agent":
            actor = str(resource.get("swarm.agent.id") or "agent")
        elif role == "cli":  # a person or script, acting as AGENT_ID or as operator
            actor = str(attributes.get("swarm.agent.id") or "cli")
        else:
            actor = role
        actor = names.get(actor, actor)
        if actor not in actors:
            actors[actor] = f"a{len(actors) + 1}"
            lines.append(f"    participant {actors[actor]} as {label(actor)}")
        target = "store"
        if name.startswith(("chat ", "execute ", "invoke_agent ")):
            target = actors[actor]  # work done by the agent itself
        arrow = "-x" if span.get("status") == "ERROR" else "->>"
        what = name.removeprefix("swarm.")
        work_id = attributes.get("swarm.work.id")
        if work_id:
            what += f" {work_id}"
        duration = span.get("duration_ms")
        if isinstance(duration, int | float):
            what += f" ({duration:.1f} ms)"
        body.append(f"    {actors[actor]}{arrow}{target}: {label(what)}")
    if not body:
        body.append("    Note over store: no operations in the window")
    return "\n".join(lines + body) + "\n"
