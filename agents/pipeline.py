"""What an agent does for pipelines: show a child its parents' outputs, and turn a
result into follow-up items.

Parents' outputs downstream: ``{parents.KEY.output}``, ``{parents.KEY.result}`` and
``{parents.KEY.work_item_id}`` in any string of the payload (a command's argv and env,
a prompt) or in the description are replaced before the backend runs; KEY is the
parent's key or id. The LLM backends also get the parents' outputs as context ahead of
the task, at most ``CONTEXT_CHARS`` characters of outputs in all (short ones whole,
long ones sharing the rest, cut with a marker).

Follow-ups: a ``python`` backend returning ``{"enqueue": [...], "join": {...}}``, or an
LLM group with ``plan = true`` answering a JSON list, makes children of the item
(validated against ``FollowUp``; invalid output fails the item with the validation
error). They are enqueued by the store in the same step as the parent's completion.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrator.errors import NotFound
from orchestrator.ids import new_work_id
from orchestrator.records import WorkItem

if TYPE_CHECKING:
    from agents.backends import Backend, Outcome
    from orchestrator.config import AgentGroup
    from orchestrator.store.base import Store

CONTEXT_CHARS = 8000
LLM_BACKENDS = ("ollama", "claude")
FOLLOW_UPS_MAX = 1000
_FIELD = re.compile(r"\{parents\.([^{}]+?)\.(output|result|work_item_id)\}")


class FollowUp(BaseModel):
    """One item a result asks for. ``after`` names sibling follow-ups (by key) this one
    waits for, besides the item that made it."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1, max_length=10_000)
    work_type: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    priority: str = Field(default="medium", pattern=r"^(critical|high|medium|low)$")
    team: str | None = None
    payload: Any = None
    key: str | None = Field(default=None, min_length=1, max_length=512)
    after: list[str] = Field(default_factory=list)


class Enqueue(BaseModel):
    model_config = ConfigDict(extra="allow")

    enqueue: list[FollowUp] = Field(max_length=FOLLOW_UPS_MAX)
    join: FollowUp | None = None


PLAN = TypeAdapter(list[FollowUp])


def parents_of(store: Store, item: WorkItem) -> list[WorkItem]:
    """The item's parents as stored now (an archived one is left out)."""
    found: list[WorkItem] = []
    for work_id in item.parents or ():
        try:
            found.append(store.get(work_id))
        except NotFound:
            continue
    return found


def output_of(parent: WorkItem) -> str:
    """A parent's output as text: its result's text, a command's stdout, else JSON."""
    result = parent.result
    if isinstance(result, str):
        return result
    if isinstance(result, dict) and isinstance(result.get("stdout"), str):
        return str(result["stdout"])
    return "" if result is None else orjson.dumps(result).decode()


def _fill(value: Any, fields: dict[str, dict[str, str]]) -> Any:
    if isinstance(value, str):
        return _FIELD.sub(lambda m: _field(m, fields), value)
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    return value


def _field(match: re.Match[str], fields: dict[str, dict[str, str]]) -> str:
    name, attribute = match.group(1), match.group(2)
    if name not in fields:
        known = sorted({p["work_item_id"] for p in fields.values()})
        raise ValueError(
            f"{match.group(0)}: {name!r} is not a parent of this item"
            f" (its parents: {', '.join(known) or 'none'})"
        )
    return fields[name][attribute]


def downstream(item: WorkItem, parents: Sequence[WorkItem], backend: str) -> WorkItem:
    """The item as its backend should see it: parents' fields filled in, and for an LLM
    the parents' outputs as context. ValueError names a placeholder that fits no parent."""
    fields: dict[str, dict[str, str]] = {}
    shorts: dict[str, list[dict[str, str]]] = {}
    for parent in parents:
        values = {
            "output": output_of(parent),
            "result": parent.result
            if isinstance(parent.result, str)
            else orjson.dumps(parent.result).decode(),
            "work_item_id": parent.work_item_id,
        }
        fields[parent.work_item_id] = values
        if parent.key is not None:
            fields[parent.key] = values
            # A follow-up's key is "<its parent's key>/<key>": the last part names it too,
            # unless two parents share it.
            short = parent.key.rsplit("/", 1)[-1]
            shorts.setdefault(short, []).append(values)
    for short, found in shorts.items():
        if len(found) == 1:
            fields.setdefault(short, found[0])
    if not item.parents or (
        "{parents." not in item.description
        and "{parents." not in orjson.dumps(item.payload).decode("utf-8", "replace")
    ):
        filled = item  # an item without parents keeps its text as it is (a planner's code)
    else:
        filled = item.evolve(
            description=_fill(item.description, fields), payload=_fill(item.payload, fields)
        )
    if backend not in LLM_BACKENDS or not parents:
        return filled
    context = parents_context(parents)
    payload = filled.payload
    if isinstance(payload, dict) and isinstance(payload.get("prompt"), str):
        return filled.evolve(payload=payload | {"prompt": f"{context}{payload['prompt']}"})
    return filled.evolve(description=f"{context}{filled.description}")


def parents_context(parents: Sequence[WorkItem]) -> str:
    """The parents' outputs, at most ``CONTEXT_CHARS`` characters of them in all: short
    outputs whole, the longer ones sharing what is left, each cut with a marker."""
    texts = {parent.work_item_id: output_of(parent) for parent in parents}
    budget, left = CONTEXT_CHARS, len(parents)
    for work_id in sorted(texts, key=lambda w: len(texts[w])):
        share = budget // left
        if len(texts[work_id]) > share:
            texts[work_id] = texts[work_id][:share] + "\n[… cut]"
        budget -= min(len(texts[work_id]), share)
        left -= 1
    parts = ["Results of the work this task builds on:\n"]
    for parent in parents:
        name = parent.key or parent.work_item_id
        parts.append(f"\n## {name} ({parent.work_type})\n{texts[parent.work_item_id]}\n")
    parts.append("\nYour task:\n")
    return "".join(parts)


def follow_ups(item: WorkItem, outcome: Outcome, group: AgentGroup) -> list[WorkItem]:
    """The children an ok outcome asks for (none for most); ValueError when the result
    asks for them in a shape that does not validate, naming what is wrong."""
    output = outcome.output
    plan = getattr(group, "plan", False)
    if plan:
        try:
            specs = PLAN.validate_json(_json_text(output))
        except ValidationError as exc:
            raise ValueError(f"the plan is not a JSON list of sub-tasks: {_first(exc)}") from None
        join_type = getattr(group, "plan_join", None)
        join = FollowUp(description=f"join: {item.description}", work_type=join_type)
        return _items(item, specs, join if join_type else None, "subtask")
    if not (isinstance(output, dict) and "enqueue" in output):
        return []
    try:
        asked = Enqueue.model_validate(output)
    except ValidationError as exc:
        raise ValueError(f"the result's enqueue is not valid: {_first(exc)}") from None
    return _items(item, asked.enqueue, asked.join, item.work_type)


def _json_text(output: Any) -> str:
    """The JSON of an answer: a model's text or a command's stdout, without a Markdown
    code fence around it."""
    if isinstance(output, dict) and isinstance(output.get("stdout"), str):
        output = output["stdout"]
    text = output if isinstance(output, str) else orjson.dumps(output).decode()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return (fenced.group(1) if fenced else text).strip()


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "the value"
    return f"{where}: {error.get('msg', 'invalid')}"


def _items(
    parent: WorkItem, specs: Sequence[FollowUp], join: FollowUp | None, default_type: str
) -> list[WorkItem]:
    if len(specs) > FOLLOW_UPS_MAX:
        raise ValueError(f"{len(specs)} follow-ups: at most {FOLLOW_UPS_MAX}")
    children: list[WorkItem] = []
    by_key: dict[str, str] = {}
    for spec in specs:
        work_id = new_work_id()
        if spec.key is not None:
            if spec.key in by_key:
                raise ValueError(f"two follow-ups have the key {spec.key!r}")
            by_key[spec.key] = work_id
        children.append(_item(spec, work_id, [parent.work_item_id], default_type, parent))
    for child, spec in zip(children, specs, strict=True):
        for ref in spec.after:
            if ref not in by_key:
                raise ValueError(f"follow-up after {ref!r}: no follow-up has that key")
            child.parents = [*(child.parents or []), by_key[ref]]
    if join is not None and children:
        parents = [c.work_item_id for c in children]
        children.append(_item(join, new_work_id(), parents, default_type, parent))
    return children


def _item(
    spec: FollowUp, work_id: str, parents: list[str], default_type: str, parent: WorkItem
) -> WorkItem:
    return WorkItem(
        work_item_id=work_id,
        work_type=spec.work_type or default_type,
        description=spec.description,
        priority=spec.priority,
        team=spec.team if spec.team is not None else parent.team,
        payload=spec.payload,
        # Under the parent's name: two plans may both say "step-1".
        key=None if spec.key is None else f"{parent.key or parent.work_item_id}/{spec.key}",
        parents=parents,
        trace_context=None,
    )


def run_item(
    backend: Backend,
    group: AgentGroup,
    item: WorkItem,
    parents: Sequence[WorkItem],
    abort: threading.Event,
    capture: bool,
) -> Outcome:
    """Run the backend on the item as its parents make it. A command stops itself when
    ``abort`` is set (it kills its process group); any other call runs in a thread of
    its own and is abandoned (left to end on its own, its answer dropped) on ``abort``."""
    from agents import spans
    from agents.backends import Outcome

    ready = downstream(item, parents, group.backend)
    if group.backend == "command":
        return spans.run_backend(backend, group, ready, abort, capture)
    done: list[Outcome] = []
    failed: list[BaseException] = []
    finished = threading.Event()
    context = contextvars.copy_context()  # the thread's spans join the item's trace

    def call() -> None:
        try:
            done.append(context.run(spans.run_backend, backend, group, ready, abort, capture))
        except BaseException as exc:  # handed to the agent's thread, which reports it
            failed.append(exc)
        finally:
            finished.set()

    threading.Thread(target=call, name=f"call-{item.work_item_id}", daemon=True).start()
    while not finished.wait(0.1):
        if abort.is_set():
            return Outcome(False, error="abandoned: the item is no longer held")
    if failed:
        raise failed[0]
    return done[0]
