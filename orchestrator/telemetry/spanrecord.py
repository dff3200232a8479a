"""One span as one line of ``telemetry_spans.jsonl`` (schema in README, "Telemetry")::

    {"trace_id": "4bf9…", "span_id": "00f0…", "parent_span_id": null,
     "name": "swarm.claim", "kind": "INTERNAL",
     "start_time": "2026-11-25T10:00:00.000001Z", "end_time": "…",
     "start_unix_nano": 1795600000000001000, "end_unix_nano": …, "duration_ms": 0.412,
     "status": "OK", "status_message": null, "attributes": {…}, "resource": {…}}

Apart from the exporter so that the tracers that do without the OpenTelemetry SDK
(``litetrace``, ``oneshot``) write the same lines; nothing here imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson


class Named(Protocol):
    """An enum member (``SpanKind``, ``StatusCode``) or anything with its name."""

    @property
    def name(self) -> str: ...


class Ids(Protocol):
    """A ``SpanContext``, as far as a line needs it."""

    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...


class StatusLike(Protocol):
    @property
    def status_code(self) -> Named: ...
    @property
    def description(self) -> str | None: ...


class SpanLike(Protocol):
    """What a line is made of: the SDK's ReadableSpan, or a span of litetrace or oneshot."""

    @property
    def name(self) -> str: ...
    @property
    def context(self) -> Ids | None: ...
    @property
    def parent(self) -> Ids | None: ...
    @property
    def kind(self) -> Named: ...
    @property
    def start_time(self) -> int | None: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def status(self) -> StatusLike: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...


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


_second: tuple[int, str] = (-1, "")  # the last second formatted: spans come in bursts


def iso(unix_nano: int) -> str:
    """RFC 3339 UTC with microseconds; formatting the seconds once per second halves
    the exporter's cost. (One tuple, replaced whole: threads never see half of it.)"""
    global _second
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (
            seconds,
            datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        )
    return f"{cached[1]}.{nanos // 1000:06d}Z"


def span_record(span: SpanLike, resource: dict[str, Any]) -> dict[str, Any]:
    record = _fields(span)
    record["resource"] = resource
    return record


def _fields(span: SpanLike) -> dict[str, Any]:
    """Every key of a line but the resource, in the schema's order."""
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
    }


def span_line(span: SpanLike, resource_json: bytes) -> bytes:
    """``span_record`` as one encoded line, with the resource serialised beforehand
    (it is the same for every span of a process, and the biggest part of a line)."""
    return orjson.dumps(_fields(span))[:-1] + b',"resource":' + resource_json + b"}\n"
