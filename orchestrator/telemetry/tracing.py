"""OpenTelemetry set-up for one process (CLI, supervisor or agent) and trace helpers.

``configure`` installs a tracer provider exporting to the span file and to the
exporters ``OTEL_TRACES_EXPORTER`` selects: ``otlp`` (an OTLP collector, with the SDK's
own variables: endpoint, headers, timeout, protocol), ``console`` (stderr), ``none``.
Unset, it means ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``)
is set and nothing else otherwise. A process that needs nothing of the SDK (the span
file only: no exporter, sampler, limits or resource variable) writes the same lines with
``litetrace`` instead, at a fraction of the SDK's cost per span, and a short-lived one
(the CLI) with ``oneshot``, which does not even import the API until asked for its
tracer. Until ``configure`` is called, or with ``TELEMETRY_ENABLED=false``, every span
is a no-op.

The traced store records its spans through the functions below (``start_span``,
``begin_trace``, ``parent_of`` …), which work the same whichever of the two engines
(``apispans.ApiSpans``, ``oneshot.OneShotSpans``) this process has.

A work item carries its trace as W3C ``traceparent`` in ``trace_context``: whichever
process touches the item continues that trace.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

    from orchestrator.telemetry.oneshot import OneShotSpans
    from orchestrator.telemetry.settings import TelemetrySettings

logger = logging.getLogger(__name__)

INSTRUMENTATION = "swarmsh"


class Span(Protocol):
    """A span as the traced store handles it: an API span or a oneshot one."""

    def set_attribute(self, key: str, value: Any) -> None: ...
    def end(self, end_time: int | None = None) -> None: ...


class Spans(Protocol):
    """A span engine (``apispans.ApiSpans`` or ``oneshot.OneShotSpans``). Parents are
    the engine's own (an API ``Context``, a oneshot ``Ids``), made by ``parent_of``."""

    def start(
        self, name: str, parent: Any, start_ns: int | None, attributes: dict[str, Any]
    ) -> Any: ...
    def begin_trace(self, name: str, parent: Any, attributes: dict[str, Any]) -> Any: ...
    def current(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[Any]: ...
    def parent_of(self, carrier: Mapping[str, str] | None) -> Any: ...
    def nests_in_caller(self, parent: Any) -> bool: ...
    def carrier_of(self, span: Any) -> dict[str, str] | None: ...
    def set_error(self, span: Any, message: str) -> None: ...


_tracer: trace.Tracer | None = None  # None: the API's no-op tracer, made when asked for
_spans: Spans | None = None
_oneshot: OneShotSpans | None = None  # until the API's tracer is asked for
_provider: TracerProvider | None = None
_close: Callable[[], None] | None = None  # how to stop what configure() installed
_flush: Callable[[], object] | None = None  # how to write what it holds now


def tracer() -> trace.Tracer:
    """The API's tracer of this process (a no-op one until ``configure``)."""
    global _tracer
    if _oneshot is not None:
        _leave_oneshot()
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.NoOpTracer()
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
    global _provider, _close, _flush, _oneshot, _spans
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
    from orchestrator.telemetry import litecore

    if not litecore.needs_sdk():
        resource = litecore.resource_attributes(attributes)
        if short_lived:
            from orchestrator.telemetry.oneshot import OneShotSpans

            _oneshot = _spans = OneShotSpans(settings.spans_file, resource)
            _close = _oneshot.close
            return
        from orchestrator.telemetry import litetrace

        lite = litetrace.LiteTracer(
            settings.spans_file,
            resource,
            batched=True,
            delay_s=float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY") or 1000) / 1000,
            max_queue=int(os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") or 65536),
        )
        _use_api(lite)
        _close, _flush = lite.shutdown, lite.flush
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
    _use_api(provider.get_tracer(INSTRUMENTATION))


def _use_api(api_tracer: trace.Tracer) -> None:
    global _tracer, _spans
    from orchestrator.telemetry.apispans import ApiSpans

    _tracer, _spans = api_tracer, ApiSpans(api_tracer)


def _leave_oneshot() -> None:
    """Someone needs the API's tracer: this process's spans go through the API from now
    on (a litetrace writing each span as it ends, with the same resource), so that
    both agree on the current span. What oneshot wrote stays written."""
    global _oneshot, _close
    oneshot, _oneshot = _oneshot, None
    assert oneshot is not None
    from orchestrator.telemetry.litetrace import LiteTracer

    lite = LiteTracer(oneshot.lines.file.path, oneshot.lines.resource)
    _use_api(lite)

    def close() -> None:
        lite.shutdown()
        oneshot.close()

    _close = close


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
    global _tracer, _spans, _oneshot, _provider, _close, _flush
    close, _provider, _close, _flush = _close, None, None, None
    _tracer = _spans = _oneshot = None
    if close is not None:
        try:
            close()
        except Exception:  # exporting must never turn a clean exit into a crash
            logger.exception("telemetry shutdown failed")


def error_status(message: str) -> trace.Status:
    """An error status of the API (for callers of ``tracer()``)."""
    from orchestrator.telemetry.apispans import error_status

    return error_status(message)


def flush() -> None:
    if _flush is not None:
        _flush()


def context_of(carrier: Mapping[str, str] | None) -> Context | None:
    """The API context a stored ``trace_context`` continues (for callers of ``tracer()``)."""
    from orchestrator.telemetry.apispans import context_of

    return context_of(carrier)


# -- the traced store's spans, through this process's engine ----------------------------


def _engine() -> Spans:
    if _spans is None:
        _use_api(tracer())  # not configured: the API's no-op spans
    assert _spans is not None
    return _spans


def start_span(
    name: str,
    parent: Any = None,
    start_ns: int | None = None,
    attributes: dict[str, Any] | None = None,
) -> Span:
    """A span in ``parent``'s trace (from ``parent_of``), else in the caller's."""
    span: Span = _engine().start(name, parent, start_ns, attributes or {})
    return span


def begin_trace(name: str, parent: Any, attributes: dict[str, Any]) -> Span:
    """The first span of an item's trace (or one in the trace it brings)."""
    span: Span = _engine().begin_trace(name, parent, attributes)
    return span


def current_span(name: str, attributes: dict[str, Any]) -> AbstractContextManager[Span]:
    """A span current inside the block; an exception is its status; ended on exit."""
    return _engine().current(name, attributes)


def parent_of(carrier: Mapping[str, str] | None) -> Any:
    """What a stored ``trace_context`` continues (None: nothing valid), for the above."""
    return _engine().parent_of(carrier)


def nests_in_caller(parent: Any) -> bool:
    """Whether the caller's current span is in ``parent``'s trace already."""
    return _engine().nests_in_caller(parent)


def carrier_of(span: Span) -> dict[str, str] | None:
    """The ``traceparent`` of ``span``, to store with a work item."""
    return _engine().carrier_of(span)


def set_error(span: Span, message: str) -> None:
    _engine().set_error(span, message)
