"""Spans of an agent's work on one item, after the OpenTelemetry GenAI conventions.

``invoke_agent {group}`` covers the item (progress, backend call, completion) inside the
item's trace; the backend call under it is ``chat {model}`` for the LLM backends (with
``gen_ai.*`` attributes: provider, models, token usage, finish reasons) and
``execute {backend}`` otherwise. Prompts and answers are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``; keys and headers never.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from agents.backends import Outcome, system_prompt, user_message
from orchestrator.redaction import redact, redact_value, secret_values
from orchestrator.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from agents.backends import Backend
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem

PROVIDERS = {"ollama": "ollama", "claude": "anthropic"}


@contextlib.contextmanager
def invoke_agent(
    agent_id: str, group: AgentGroup, item: WorkItem, parents: Sequence[WorkItem] = ()
) -> Iterator[Span]:
    # The agent's id is in the resource, the item's state in the store spans: each extra
    # attribute costs about a microsecond per item.
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": agent_id,
        "gen_ai.agent.name": group.name,
        "swarm.work.id": item.work_item_id,
        "swarm.work.type": item.work_type,
    }
    # A pipeline's child links to the traces of the parents whose outputs it builds on
    # (the span file keeps no links: the parents' ids are an attribute too).
    if parents:
        attributes["swarm.work.parents"] = [parent.work_item_id for parent in parents]
    links = [
        Link(trace.get_current_span(context).get_span_context())
        for parent in parents
        if (context := tracing.context_of(parent.trace_context)) is not None
    ]
    with tracing.tracer().start_as_current_span(
        f"invoke_agent {group.name}",
        context=tracing.context_of(item.trace_context),
        attributes=attributes,
        links=links or None,
        record_exception=False,
    ) as span:
        yield span


def run_backend(
    backend: Backend,
    group: AgentGroup,
    item: WorkItem,
    cancel: threading.Event,
    capture_content: bool = False,
) -> Outcome:
    """``backend.run`` inside its span; the outcome's model and usage become attributes."""
    provider = PROVIDERS.get(group.backend)
    if provider is None:
        name = f"execute {group.backend}"
        attributes: dict[str, Any] = {"swarm.backend": group.backend}
        kind = SpanKind.INTERNAL
    else:
        model = getattr(backend, "model", None) or group.model or "unknown"
        name = f"chat {model}"
        attributes = _request_attributes(provider, str(model), backend, group)
        if capture_content:
            attributes["gen_ai.system_instructions"] = system_prompt(group)
            attributes["gen_ai.input.messages"] = orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": user_message(item)}]}]
            ).decode()
        kind = SpanKind.CLIENT
    attributes["swarm.work.id"] = item.work_item_id
    with tracing.tracer().start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,  # the exception's text may hold an echoed key
    ) as span:
        try:
            outcome = redacted(backend.run(item, cancel))
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, redact(f"{type(exc).__name__}: {exc}")[:500]))
            raise
        if provider is not None:
            _response_attributes(span, outcome, capture_content)
        elif isinstance(outcome.output, dict) and "exit_code" in outcome.output:
            span.set_attribute("process.exit.code", int(outcome.output["exit_code"]))
        if not outcome.ok:
            mark_failed(span, outcome)
        return outcome


def redacted(outcome: Outcome) -> Outcome:
    """The outcome without the process's secrets (an endpoint may echo a key in its
    error): from here the text is stored, logged and exported."""
    secrets = secret_values()  # once per outcome: reading them scans the environment
    if not secrets:
        return outcome
    if outcome.error is not None:
        outcome.error = redact(outcome.error, secrets)
    outcome.output = redact_value(outcome.output, secrets)
    outcome.details = redact_value(outcome.details, secrets)
    return outcome


def mark_failed(span: Span, outcome: Outcome) -> None:
    span.set_status(Status(StatusCode.ERROR, (outcome.error or "failed")[:500]))
    span.set_attribute("error.type", _error_type(outcome))


def _request_attributes(
    provider: str, model: str, backend: Backend, group: AgentGroup
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "swarm.backend": group.backend,
    }
    if provider == "anthropic":
        attributes["gen_ai.request.max_tokens"] = group.max_tokens
    host = getattr(backend, "host", None) or group.host
    if host:
        parts = urlsplit(host if "//" in host else f"//{host}")
        if parts.hostname:
            attributes["server.address"] = parts.hostname
        if parts.port:
            attributes["server.port"] = parts.port
    return attributes


def _response_attributes(span: Span, outcome: Outcome, capture_content: bool) -> None:
    if outcome.model:
        span.set_attribute("gen_ai.response.model", outcome.model)
    if outcome.input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", outcome.input_tokens)
    if outcome.output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", outcome.output_tokens)
    finish = outcome.details.get("finish_reason")
    if finish:
        span.set_attribute("gen_ai.response.finish_reasons", [str(finish)])
    if capture_content and outcome.ok and isinstance(outcome.output, str):
        message = {
            "role": "assistant",
            "parts": [{"type": "text", "content": outcome.output}],
            "finish_reason": str(finish or "stop"),
        }
        span.set_attribute("gen_ai.output.messages", orjson.dumps([message]).decode())


def _error_type(outcome: Outcome) -> str:
    error = (outcome.error or "").lower()
    if error.startswith("cancelled"):
        return "cancelled"
    if "did not answer within" in error or "timed out" in error:
        return "timeout"
    if "cannot reach" in error:
        return "connection"
    if isinstance(outcome.output, dict) and "exit_code" in outcome.output:
        return "exit_code"
    return "backend_error"
