"""Spans of a one-shot command without the OpenTelemetry API.

An item command (``swarm claim|add|progress|complete``) records one span per store
operation, and importing the API to do so (its context machinery, propagators and
``typing_extensions``) was about an eighth of the whole process (bench/cli_bench.py,
issue 12's per-command target). These spans have the ids, parentage, sampling,
attribute rules and lines of litetrace's; each is written as it ends.

``tracing`` uses them for a short-lived process until something asks for the API's
tracer (``tracing.tracer()``: ``swarm analyze``, an intelligent claim, a maintenance
task); from then on that process's spans go through the API, so that the two never
disagree about which span is current.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from orchestrator.telemetry.litecore import (
    LineWriter,
    cleaned,
    error_text,
    set_attribute,
    urandom_bits,
)

# The W3C traceparent as the API's propagator reads it.
_TRACEPARENT = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$"
)
_TRACEPARENT_MAX = 512
_SAMPLED = 1


class _Name:
    """A name where the SDK has an enum member (``SpanKind``, ``StatusCode``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_INTERNAL = _Name("INTERNAL")
_UNSET = _Name("UNSET")
_ERROR = _Name("ERROR")


class _Status:
    __slots__ = ("description", "status_code")

    def __init__(self, code: _Name, description: str | None = None) -> None:
        self.status_code = code
        self.description = description


_NO_STATUS = _Status(_UNSET)


class Ids:
    """A span's place: its trace, its id, its flags (and any ``tracestate`` it carries)."""

    __slots__ = ("flags", "span_id", "state", "trace_id")

    def __init__(self, trace_id: int, span_id: int, flags: int, state: str | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.state = state


class OneShotSpan:
    __slots__ = (
        "_lines",
        "attributes",
        "context",
        "end_time",
        "kind",
        "name",
        "parent",
        "recording",
        "start_time",
        "status",
    )

    def __init__(
        self,
        lines: LineWriter,
        name: str,
        context: Ids,
        parent: Ids | None,
        attributes: Mapping[str, Any] | None,
        start_time: int | None,
    ) -> None:
        self._lines = lines
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = _INTERNAL
        self.recording = bool(context.flags & _SAMPLED)
        self.attributes = cleaned(attributes) if self.recording else {}
        self.start_time = start_time if start_time is not None else time.time_ns()
        self.end_time: int | None = None
        self.status = _NO_STATUS

    def set_attribute(self, key: str, value: Any) -> None:
        if self.recording and self.end_time is None:
            set_attribute(self.attributes, key, value)

    def set_error(self, message: str) -> None:
        if self.recording and self.end_time is None:
            self.status = _Status(_ERROR, error_text(message))

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is None:
            self.end_time = end_time if end_time is not None else time.time_ns()
            if self.recording:
                self._lines.write([self])


def _new_id(bits: int) -> int:
    value = 0
    while value == 0:  # 0 is the invalid id
        value = urandom_bits(bits)
    return value


class OneShotSpans:
    """The span engine of ``tracing`` for a one-shot command (see ``apispans.ApiSpans``)."""

    def __init__(self, spans_file: str, resource: Mapping[str, Any]) -> None:
        self.lines = LineWriter(spans_file, resource)
        self._current: list[OneShotSpan] = []

    def start(
        self,
        name: str,
        parent: Ids | None,
        start_ns: int | None,
        attributes: dict[str, Any],
    ) -> OneShotSpan:
        if parent is None and self._current:
            parent = self._current[-1].context
        if parent is None:
            ids = Ids(_new_id(128), _new_id(64), _SAMPLED, None)
        else:
            ids = Ids(parent.trace_id, _new_id(64), parent.flags, parent.state)
        return OneShotSpan(self.lines, name, ids, parent, attributes, start_ns)

    def begin_trace(self, name: str, parent: Ids | None, attributes: dict[str, Any]) -> OneShotSpan:
        # A new trace when there is no parent: its link to the caller's span is not
        # part of a span file line, so there is nothing to record of it here.
        if parent is None:
            ids = Ids(_new_id(128), _new_id(64), _SAMPLED, None)
            return OneShotSpan(self.lines, name, ids, None, attributes, None)
        return self.start(name, parent, None, attributes)

    def current(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[OneShotSpan]:
        return self._as_current(self.start(name, None, None, attributes))

    @contextmanager
    def _as_current(self, span: OneShotSpan) -> Iterator[OneShotSpan]:
        self._current.append(span)
        try:
            yield span
        except Exception as exc:  # as the API's use_span: the exception is the status
            span.set_error(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._current.remove(span)
            span.end()

    @staticmethod
    def parent_of(carrier: Mapping[str, str] | None) -> Ids | None:
        """The span a stored ``trace_context`` continues, read as the API reads it."""
        header = carrier.get("traceparent") if carrier else None
        if not header or len(header) > _TRACEPARENT_MAX:
            return None
        match = _TRACEPARENT.search(header)
        if not match:
            return None
        version, trace_id, span_id, flags, rest = match.groups()
        if trace_id == "0" * 32 or span_id == "0" * 16 or version == "ff":
            return None
        if version == "00" and rest:
            return None
        state = carrier.get("tracestate") if carrier else None
        return Ids(int(trace_id, 16), int(span_id, 16), int(flags, 16), state or None)

    def nests_in_caller(self, parent: Ids) -> bool:
        return bool(self._current) and self._current[-1].context.trace_id == parent.trace_id

    @staticmethod
    def carrier_of(span: OneShotSpan) -> dict[str, str]:
        ids = span.context
        carrier = {"traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.flags:02x}"}
        if ids.state:
            carrier["tracestate"] = ids.state
        return carrier

    @staticmethod
    def set_error(span: OneShotSpan, message: str) -> None:
        span.set_error(message)

    def close(self) -> None:
        self.lines.close()
