"""The JSONL span exporter: OpenTelemetry spans -> lines of ``telemetry_spans.jsonl``
(one line per span, see ``spanrecord`` and README, "Telemetry")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from orchestrator.redaction import redact_json
from orchestrator.telemetry.spanfile import SpanFileWriter
from orchestrator.telemetry.spanrecord import SCHEMA_KEYS, iso, span_record

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SCHEMA_KEYS", "JsonlSpanExporter", "iso", "span_record"]


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
        data = redact_json(data)  # an error echoing a key must not reach the file
        return SpanExportResult.SUCCESS if self.writer.append(data) else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.writer.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
