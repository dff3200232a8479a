"""What the two tracers without the SDK share, importing nothing of OpenTelemetry:
``litetrace`` (the API's tracer, for agents and the supervisor) and ``oneshot`` (the
item commands, which spare themselves the API's import: an eighth of such a process,
bench/cli_bench.py).

Both write the lines the SDK's exporter writes (``spanrecord``), with the SDK's
attribute rules and resource keys.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from orchestrator.redaction import redact, redact_json
from orchestrator.telemetry.spanfile import SpanFileWriter
from orchestrator.telemetry.spanrecord import SpanLike, span_line

logger = logging.getLogger(__name__)

# Variables these tracers honour or that do not concern them; any other OTEL_* one
# (exporters, sampler, limits, resource) needs the SDK.
_HANDLED = ("OTEL_SERVICE_NAME", "OTEL_INSTRUMENTATION_GENAI_", "OTEL_BSP_")
MAX_ATTRIBUTES = 128  # the SDK's default OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT
_PLAIN = (str, int, float)  # values the SDK keeps as they are (bool is an int; enums of str)


def needs_sdk(environ: Mapping[str, str] = os.environ) -> bool:
    return any(
        key.startswith("OTEL_") and value and not key.startswith(_HANDLED)
        for key, value in environ.items()
    )


def _sdk_version() -> str:
    # The package's version module only: importing the SDK itself costs tens of ms.
    from opentelemetry.sdk.version import __version__

    return __version__


def resource_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What ``Resource.create(attributes)`` holds when no OTEL_* variable adds to it
    (a test compares the two, so that an SDK release that changes it is noticed)."""
    return {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _sdk_version(),
        "service.instance.id": str(uuid.uuid4()),
        **attributes,
    }


def error_text(message: str) -> str:
    """A span's error description: redacted before it is cut, so that no part of a
    secret crossing the cut survives."""
    return redact(message)[:500]


def urandom_bits(bits: int) -> int:
    """An id for a process that makes a span or two: no ``random`` module to import."""
    return int.from_bytes(os.urandom(bits // 8), "big")


def cleaned(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The attributes as the SDK would keep them. Strings and numbers, nearly all of
    ours, go as they are; anything else through the API's own cleaning."""
    if not attributes:
        return {}
    if len(attributes) <= MAX_ATTRIBUTES:
        for value in attributes.values():
            if not isinstance(value, _PLAIN):
                break
        else:
            return dict(attributes)
    from opentelemetry.attributes import BoundedAttributes

    return dict(BoundedAttributes(MAX_ATTRIBUTES, attributes, immutable=False))


def set_attribute(attributes: dict[str, Any], key: str, value: Any) -> None:
    """``span.set_attribute`` as the SDK does it, on a span's attribute dict."""
    if not isinstance(value, _PLAIN) or not key or type(key) is not str:
        from opentelemetry.attributes import BoundedAttributes

        bounded = BoundedAttributes(None, {key: value}, immutable=False)
        if key not in bounded:
            return  # an invalid key, dropped as the SDK drops it
        value = bounded[key]
    attributes.pop(key, None)  # a new value moves to the end, as in the SDK
    if len(attributes) >= MAX_ATTRIBUTES:
        del attributes[next(iter(attributes))]  # the SDK drops the oldest
    attributes[key] = value


class LineWriter:
    """Ended spans to the span file, as one redacted append per batch."""

    def __init__(self, spans_file: str, resource: Mapping[str, Any]) -> None:
        self.file = SpanFileWriter(spans_file)
        self.resource = dict(resource)
        self._resource_json = orjson.dumps(self.resource)

    def write(self, spans: Sequence[SpanLike]) -> None:
        resource = self._resource_json
        try:
            data = b"".join(span_line(span, resource) for span in spans)
        except TypeError:  # a value the API lets through that JSON cannot hold (bytes)
            data = b"".join(self._lines_that_encode(spans))
        # An error text echoing a key must not reach the file.
        self.file.append(redact_json(data))

    def _lines_that_encode(self, spans: Sequence[SpanLike]) -> Iterator[bytes]:
        for span in spans:
            try:
                yield span_line(span, self._resource_json)
            except TypeError as exc:
                logger.warning("span %s not written: %s", span.name, exc)

    def close(self) -> None:
        self.file.close()
