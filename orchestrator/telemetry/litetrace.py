"""A tracer without the OpenTelemetry SDK: the API's ``Tracer``, writing the span file
lines the SDK writes with ``JsonlSpanExporter`` (``spanrecord``).

Importing and configuring the SDK (resources, metrics, psutil, thread pools) cost a
process about 20 ms (bench/cli_bench.py); the item commands do without even the API
(``oneshot``). Agents pay the SDK per span instead: ~15-55 µs to create and end one
(locks, span limits, processors), six spans an item, against ~5 µs here. This tracer
keeps what a line holds: same ids, parentage, sampling (parent-based, always on for new
traces: the SDK's default), attribute rules (the SDK's default limit of 128, values
cleaned as ``BoundedAttributes`` does) and resource.

A short-lived process that asks for the API's tracer writes each span as it ends; a
long-lived one (agents, the supervisor) queues it, and a background thread writes the
queue in one locked append every ``OTEL_BSP_SCHEDULE_DELAY`` ms (a kill -9 loses at
most that much, as with the SDK's batch processor) or sooner when it fills. Secrets are
redacted from every batch.

``tracing.configure`` uses it only when nothing else needs the SDK: no OTLP endpoint,
exporter, sampler, limits or resource variables (``needs_sdk``).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from orchestrator.telemetry.litecore import (
    LineWriter,
    cleaned,
    needs_sdk,
    resource_attributes,
    set_attribute,
    urandom_bits,
)

__all__ = ["LiteTracer", "needs_sdk", "resource_attributes"]

logger = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


class LiteSpan(trace.Span):
    """A recording span; handed to its tracer when it ends."""

    __slots__ = (
        "_tracer",
        "attributes",
        "context",
        "end_time",
        "kind",
        "name",
        "parent",
        "start_time",
        "status",
    )

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
        self.attributes = cleaned(attributes)
        self.start_time: int | None = start_time if start_time is not None else time.time_ns()
        self.end_time: int | None = None
        self.status = _UNSET

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None:
            set_attribute(self.attributes, key, value)

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, UNSET changes nothing.
        if self.end_time is not None or self.status.status_code is StatusCode.OK:
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
        if self.end_time is None:
            self.end_time = end_time if end_time is not None else time.time_ns()
            self._tracer.export(self)


class _Current:
    """``trace.use_span`` as a plain context manager (a generator-based one costs a
    few µs more per span): the span is current inside, gets the exception as its
    status, and ends on exit."""

    __slots__ = ("end_on_exit", "set_status", "span", "token")

    def __init__(self, span: trace.Span, end_on_exit: bool, set_status: bool) -> None:
        self.span = span
        self.end_on_exit = end_on_exit
        self.set_status = set_status

    def __enter__(self) -> trace.Span:
        self.token = context_api.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        span = self.span
        context_api.detach(self.token)
        # As use_span: only an Exception (not GeneratorExit and its kin) is an error.
        if self.set_status and isinstance(exc, Exception) and span.is_recording():
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self.end_on_exit:
            span.end()


class LiteTracer(trace.Tracer):
    """The API's tracer over the span file. ``batched``: spans are queued and written
    by a background thread (long-lived processes); otherwise each as it ends."""

    def __init__(
        self,
        spans_file: str,
        resource: Mapping[str, Any],
        *,
        batched: bool = False,
        delay_s: float = 1.0,
        max_queue: int = 65536,
        batch_size: int = 512,
    ) -> None:
        self.lines = LineWriter(spans_file, resource)
        self.batched = batched
        if batched:  # long-lived: ~50 ns an id
            import random

            self._bits: Callable[[int], int] = random.getrandbits
        else:  # a span or two: ~0.5 us an id, and no random module to import (~1% of a claim)
            self._bits = urandom_bits
        self.delay_s = delay_s
        self.max_queue = max_queue
        self._queue: collections.deque[LiteSpan] = collections.deque()
        self._wake_at = min(batch_size, max_queue)  # a batch this big is written at once
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()  # batches reach the file in the order they end
        self._dropped = 0
        if batched:
            _batched.add(self)
            atexit.register(self.shutdown)

    def _new_id(self, bits: int) -> int:
        value = 0
        while value == 0:  # 0 is the invalid id
            value = self._bits(bits)
        return value

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
                self._new_id(64),
                False,
                _SAMPLED if sampled else _UNSAMPLED,
                parent.trace_state,
            )
            if not sampled:
                return trace.NonRecordingSpan(own)
            return LiteSpan(self, name, own, parent, kind, attributes, start_time)
        own = SpanContext(self._new_id(128), self._new_id(64), False, _SAMPLED)
        return LiteSpan(self, name, own, None, kind, attributes, start_time)

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
    ) -> _Current:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        return _Current(span, end_on_exit, set_status_on_exception)

    # -- writing -------------------------------------------------------------------------

    def export(self, span: LiteSpan) -> None:
        if not self.batched:
            self.lines.write([span])
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._dropped += 1  # as the SDK's batch processor: a full queue drops
            return
        queue.append(span)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._wake_at:
            self._wake.set()

    def _start(self) -> None:
        with _starting:  # two threads' first spans must not start two writers
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="litetrace", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.delay_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive a bad batch
                logger.exception("writing spans failed")

    def flush(self) -> None:
        """Write every queued span now."""
        with self._write_lock:
            queue = self._queue
            spans = []
            with contextlib.suppress(IndexError):
                while True:
                    spans.append(queue.popleft())
            if spans:
                self.lines.write(spans)
            if self._dropped:
                logger.warning("span queue full: %d span(s) dropped", self._dropped)
                self._dropped = 0

    def shutdown(self) -> None:
        if self.batched:
            atexit.unregister(self.shutdown)
            self._stop.set()
            self._wake.set()
            thread, self._thread = self._thread, None
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=10)
            self.flush()
        self.lines.close()

    def _forked(self) -> None:
        """In a forked child: the parent writes what it queued; the child starts afresh."""
        self._queue = collections.deque()
        self._thread = None
        self._wake = threading.Event()
        self._write_lock = threading.Lock()


_batched: weakref.WeakSet[LiteTracer] = weakref.WeakSet()
_starting = threading.Lock()


def _after_fork() -> None:
    global _starting
    _starting = threading.Lock()  # another thread of the parent may have held it
    for tracer in list(_batched):
        tracer._forked()


os.register_at_fork(after_in_child=_after_fork)
