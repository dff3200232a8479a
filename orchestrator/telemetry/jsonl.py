"""The JSONL span exporter: OpenTelemetry spans -> lines of ``telemetry_spans.jsonl``.

One line per span (schema in README, "Telemetry")::

    {"trace_id": "4bf9…", "span_id": "00f0…", "parent_span_id": null,
     "name": "swarm.claim", "kind": "INTERNAL",
     "start_time": "2026-11-25T10:00:00.000001Z", "end_time": "…",
     "start_unix_nano": 1795600000000001000, "end_unix_nano": …, "duration_ms": 0.412,
     "status": "OK", "status_message": null, "attributes": {…}, "resource": {…}}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from orchestrator.telemetry.spanfile import SpanFileWriter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

SCHEMA_KEYS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "start_unix_nano",
    "end_unix_nano",
    "duration_ms",
    "status",
    "status_message",
    "attributes",
    "resource",
)


_second: list[Any] = [None, ""]  # the last second formatted: spans come in bursts


def iso(unix_nano: int) -> str:
    """RFC 3339 UTC with microseconds; formatting the seconds once per second halves
    the exporter's cost."""
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    if _second[0] != seconds:
        _second[0] = seconds
        _second[1] = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{nanos // 1000:06d}Z"


def span_record(span: ReadableSpan, resource: dict[str, Any]) -> dict[str, Any]:
    context = span.context
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or start
    status = span.status
    return {
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time": iso(start),
        "end_time": iso(end),
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": status.status_code.name,
        "status_message": status.description,
        "attributes": dict(span.attributes or {}),
        "resource": resource,
    }


class JsonlSpanExporter(SpanExporter):
    """Writes each batch with one locked append (see ``spanfile``)."""

    def __init__(self, spans_file: str) -> None:
        self.writer = SpanFileWriter(spans_file)
        self._resources: dict[int, dict[str, Any]] = {}

    def _resource(self, span: ReadableSpan) -> dict[str, Any]:
        key = id(span.resource)
        cached = self._resources.get(key)
        if cached is None:
            cached = self._resources[key] = dict(span.resource.attributes)
        return cached

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        dumps = orjson.dumps
        data = b"".join(
            dumps(span_record(span, self._resource(span)), option=orjson.OPT_APPEND_NEWLINE)
            for span in spans
        )
        return SpanExportResult.SUCCESS if self.writer.append(data) else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.writer.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
