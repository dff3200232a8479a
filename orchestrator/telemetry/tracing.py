"""OpenTelemetry set-up for one process (CLI, supervisor or agent) and trace helpers.

``configure`` installs a tracer provider exporting to the span file and to the
exporters ``OTEL_TRACES_EXPORTER`` selects: ``otlp`` (an OTLP collector, with the SDK's
own variables: endpoint, headers, timeout, protocol), ``console`` (stderr), ``none``.
Unset, it means ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``)
is set and nothing else otherwise. A process that needs nothing of the SDK (the span
file only: no exporter, sampler, limits or resource variable) writes the same lines with
``litetrace`` instead, at a fraction of the SDK's cost per span, and a short-lived one
(the CLI) spares itself importing the SDK. Until ``configure`` is called, or with
``TELEMETRY_ENABLED=false``, every span is a no-op.

A work item carries its trace as W3C ``traceparent`` in ``trace_context``: whichever
process touches the item continues that trace.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from orchestrator.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)

INSTRUMENTATION = "swarmsh"
_propagator = TraceContextTextMapPropagator()
_noop = trace.NoOpTracer()
_tracer: trace.Tracer = _noop
_provider: TracerProvider | None = None
_close: Callable[[], None] | None = None  # how to stop what configure() installed
_flush: Callable[[], object] | None = None  # how to write what it holds now


def tracer() -> trace.Tracer:
    return _tracer


def enabled() -> bool:
    return _close is not None


def configure(
    role: str,
    settings: TelemetrySettings,
    *,
    agent_id: str | None = None,
    short_lived: bool = False,
) -> None:
    """Start exporting this process's spans. ``short_lived`` (the CLI) writes each
    span as it ends instead of batching, and gives a slow collector less time."""
    global _tracer, _provider, _close, _flush
    shutdown()
    if not settings.enabled:
        return
    attributes: dict[str, Any] = {
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or "swarmsh",
        "swarm.role": role,
        "process.pid": os.getpid(),
        # uname's node name is gethostname()'s, without importing socket (the CLI's
        # start-up time).
        "host.name": os.environ.get("SWARM_HOST_ID") or os.uname().nodename,
    }
    if agent_id:
        attributes["swarm.agent.id"] = agent_id
    from orchestrator.telemetry import litetrace

    if not litetrace.needs_sdk():
        lite = litetrace.LiteTracer(
            settings.spans_file,
            litetrace.resource_attributes(attributes),
            batched=not short_lived,
            delay_s=float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY") or 1000) / 1000,
            max_queue=int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 65536),
        )
        _tracer, _close, _flush = lite, lite.shutdown, lite.flush
        return

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from orchestrator.telemetry.jsonl import JsonlSpanExporter
    from orchestrator.telemetry.settings import traces_exporters

    provider = TracerProvider(resource=Resource.create(attributes))
    jsonl = JsonlSpanExporter(settings.spans_file)
    if short_lived:
        provider.add_span_processor(SimpleSpanProcessor(jsonl))
    else:
        provider.add_span_processor(_batch(jsonl))
    exporters = traces_exporters()
    if exporters is None:
        exporters = ("otlp",) if _otlp_endpoint() else ()
    if "otlp" in exporters:
        otlp = _otlp_exporter(short_lived)
        if otlp is not None:
            provider.add_span_processor(_batch(otlp))
    if "console" in exporters:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        console = ConsoleSpanExporter(out=sys.stderr)
        provider.add_span_processor(
            SimpleSpanProcessor(console) if short_lived else _batch(console)
        )
    _provider, _close, _flush = provider, provider.shutdown, provider.force_flush
    _tracer = provider.get_tracer(INSTRUMENTATION)


def _batch(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # A deeper queue and a shorter delay than the SDK's defaults: a busy agent makes
    # thousands of spans a second, and a kill -9 loses at most one delay's worth.
    return BatchSpanProcessor(
        exporter,
        max_queue_size=int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 65536),
        schedule_delay_millis=float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY") or 1000),
    )


def _otlp_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def _otlp_exporter(short_lived: bool) -> Any:
    """The OTLP exporter; without an endpoint variable the SDK's default one
    (localhost:4318, or :4317 for grpc)."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    timeout = None
    if short_lived and not (
        os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
    ):
        timeout = 2.0  # a command must not hang on a collector that is down
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            logger.warning(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc"
                " (pip install it), or use http/protobuf; spans go to the span file only"
            )
            return None
        return GrpcExporter(timeout=timeout)
    if protocol != "http/protobuf":
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported (use http/protobuf or grpc);"
            " spans go to the span file only",
            protocol,
        )
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(timeout=timeout)


def shutdown() -> None:
    """Flush and stop exporting (process exit, or before reconfiguring)."""
    global _tracer, _provider, _close, _flush
    close, _provider, _close, _flush, _tracer = _close, None, None, None, _noop
    if close is not None:
        try:
            close()
        except Exception:  # exporting must never turn a clean exit into a crash
            logger.exception("telemetry shutdown failed")


def error_status(message: str) -> trace.Status:
    return trace.Status(trace.StatusCode.ERROR, message[:500])


def flush() -> None:
    if _flush is not None:
        _flush()


# -- trace context carried by work items ---------------------------------------------------


def carrier_of(span: trace.Span) -> dict[str, str] | None:
    """The ``traceparent`` of ``span``, to store with a work item."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


_contexts: dict[str, Context | None] = {}


def context_of(carrier: dict[str, str] | None) -> Context | None:
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
