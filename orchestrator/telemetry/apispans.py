"""The store's spans through the OpenTelemetry API: the SDK's tracer, or litetrace's.

``tracing`` hands the traced store one of two span engines with the same methods: this
one, for every process that uses the API (agents, the supervisor, the SDK's exporters),
and ``oneshot.OneShotSpans`` for an item command that needs nothing of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orchestrator.telemetry.litecore import error_text

_propagator = TraceContextTextMapPropagator()
_ROOT = Context()  # an empty context: a span started in it begins a new trace
_contexts: dict[str, Context | None] = {}


def context_of(carrier: Mapping[str, str] | None) -> Context | None:
    """The context a stored ``trace_context`` continues, or None. Cached: an agent
    touches the same item several times, and parsing costs as much as a store read."""
    if not carrier:
        return None
    traceparent = carrier.get("traceparent", "")
    context = _contexts.get(traceparent)
    if context is None and traceparent not in _contexts:
        extracted = _propagator.extract(carrier)
        valid = trace.get_current_span(extracted).get_span_context().is_valid
        context = extracted if valid else None
        if len(_contexts) >= 4096:
            _contexts.clear()
        _contexts[traceparent] = context
    return context


def error_status(message: str) -> trace.Status:
    return trace.Status(trace.StatusCode.ERROR, error_text(message))


class ApiSpans:
    """Spans of ``tracer``, nested by the API's current context."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start(
        self,
        name: str,
        parent: Context | None,
        start_ns: int | None,
        attributes: dict[str, Any],
    ) -> trace.Span:
        return self.tracer.start_span(
            name, context=parent, start_time=start_ns, attributes=attributes
        )

    def begin_trace(
        self, name: str, parent: Context | None, attributes: dict[str, Any]
    ) -> trace.Span:
        """A span in ``parent``'s trace, else the first of a new trace linked to what
        the caller is doing (``swarm up``, a script's own trace)."""
        caller = trace.get_current_span().get_span_context()
        links = [trace.Link(caller)] if parent is None and caller.is_valid else None
        return self.tracer.start_span(
            name, context=parent or _ROOT, links=links, attributes=attributes
        )

    def current(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name, attributes=attributes)

    @staticmethod
    def parent_of(carrier: Mapping[str, str] | None) -> Context | None:
        return context_of(carrier)

    @staticmethod
    def nests_in_caller(parent: Context) -> bool:
        """Whether the caller's span is in ``parent``'s trace already (an agent's
        ``invoke_agent`` span), so that a span there nests under it instead."""
        current = trace.get_current_span().get_span_context()
        stored = trace.get_current_span(parent).get_span_context()
        return current.is_valid and current.trace_id == stored.trace_id

    @staticmethod
    def carrier_of(span: trace.Span) -> dict[str, str] | None:
        if not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    @staticmethod
    def set_error(span: trace.Span, message: str) -> None:
        span.set_status(error_status(message))

    def flush(self) -> None:
        pass
