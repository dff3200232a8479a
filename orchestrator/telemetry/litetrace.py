"""A tracer for short-lived processes (the CLI): the OpenTelemetry API's ``Tracer``,
writing each span to the span file as it ends, without the SDK.

SwarmSH users run one ``swarm`` process per operation. Importing and configuring the
SDK (resources, metrics, psutil, thread pools) cost about a fifth of such a process
(bench/cli_bench.py), to record one or two spans. This tracer writes the same lines as
the SDK with ``JsonlSpanExporter`` (``spanrecord``): same ids, parentage, sampling,
attribute rules (the API's ``BoundedAttributes`` with the SDK's default limit) and
resource. ``tracing.configure`` uses it only when nothing else needs the SDK: no OTLP
endpoint, sampler, limits or resource variables (``needs_sdk``).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.version import __version__ as SDK_VERSION
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from orchestrator.telemetry.spanfile import SpanFileWriter
from orchestrator.telemetry.spanrecord import span_record

# Variables this tracer honours or that do not concern a process writing a few spans
# synchronously; any other OTEL_* one (exporters, sampler, limits, resource) needs the SDK.
_HANDLED = ("OTEL_SERVICE_NAME", "OTEL_INSTRUMENTATION_GENAI_", "OTEL_BSP_")
_MAX_ATTRIBUTES = 128  # the SDK's default OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT


def needs_sdk(environ: Mapping[str, str] = os.environ) -> bool:
    return any(
        key.startswith("OTEL_") and value and not key.startswith(_HANDLED)
        for key, value in environ.items()
    )


def resource_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What ``Resource.create(attributes)`` holds when no OTEL_* variable adds to it
    (a test compares the two, so that an SDK release that changes it is noticed)."""
    return {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": SDK_VERSION,
        "service.instance.id": str(uuid.uuid4()),
        **attributes,
    }


def _new_id(bits: int) -> int:
    value = 0
    while value == 0:  # 0 is the invalid id
        value = random.getrandbits(bits)
    return value


class LiteSpan(trace.Span):
    """A recording span; written when it ends."""

    def __init__(
        self,
        tracer: LiteTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.attributes = BoundedAttributes(_MAX_ATTRIBUTES, attributes, immutable=False)
        self.start_time: int | None = start_time if start_time is not None else time.time_ns()
        self.end_time: int | None = None
        self.status = Status(StatusCode.UNSET)

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.is_recording():
            self.attributes[key] = value

    def update_name(self, name: str) -> None:
        if self.is_recording():
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET changes nothing.
        if not self.is_recording() or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    # Events and links are not part of a span file line.
    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        pass

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        pass

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        pass

    def end(self, end_time: int | None = None) -> None:
        if self.is_recording():
            self.end_time = end_time if end_time is not None else time.time_ns()
            self._tracer.export(self)


class LiteTracer(trace.Tracer):
    """The API's tracer over the span file, sampling as the SDK's default
    (parent-based, always on for new traces)."""

    def __init__(self, spans_file: str, resource: Mapping[str, Any]) -> None:
        self.writer = SpanFileWriter(spans_file)
        self.resource = dict(resource)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            sampled = parent.trace_flags.sampled
            own = SpanContext(
                parent.trace_id,
                _new_id(64),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
                trace_state=parent.trace_state,
            )
            if not sampled:
                return trace.NonRecordingSpan(own)
        else:
            own = SpanContext(
                _new_id(128),
                _new_id(64),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        return LiteSpan(
            self, name, own, parent if parent.is_valid else None, kind, attributes, start_time
        )

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current

    def export(self, span: LiteSpan) -> None:
        line = orjson.dumps(span_record(span, self.resource), option=orjson.OPT_APPEND_NEWLINE)
        self.writer.append(line)

    def shutdown(self) -> None:
        self.writer.close()
