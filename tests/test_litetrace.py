"""The tracer without the SDK writes the lines the SDK would: same operations,
parentage, attributes, statuses and resource keys, each span as it ends (the CLI) or
batched by a background thread (agents, the supervisor)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from orchestrator.errors import NotFound
from orchestrator.records import WorkItem
from orchestrator.telemetry import litetrace, tracing
from orchestrator.telemetry.settings import TelemetrySettings
from orchestrator.wiring import open_store

from .conftest import wait_for


def _operations(store_dir: Path) -> None:
    store = open_store(store_dir)
    try:
        with tracing.tracer().start_as_current_span("script", attributes={"n": 1}):
            store.add_work(WorkItem("work_1_0000aaaa", "feature", "first", priority="high"))
        store.claim("agent_a")
        store.progress("work_1_0000aaaa", 40, agent_id="agent_a")
        store.complete("work_1_0000aaaa", "success", 3, agent_id="agent_a")
        store.claim_new("agent_a", WorkItem("work_2_0000bbbb", "bug", "second", team="core"))
        with pytest.raises(NotFound):
            store.fail("work_404", "why", agent_id="agent_a")
        span = tracing.tracer().start_span("manual", attributes={"list": ["a", "b"], "none": None})
        span.set_attributes({f"a{i}": i for i in range(130)})  # the oldest are dropped
        span.set_attributes({"a129": "again", "ints": (1, 2), "flag": True, "x": 0.5})
        span.set_status(trace.StatusCode.ERROR, "broken")
        span.set_status(trace.StatusCode.UNSET)
        span.end()
        with pytest.raises(ValueError):
            with tracing.tracer().start_as_current_span("raising", attributes={"n": 2}):
                tracing.tracer().start_span("inner").end()
                raise ValueError("no good")
    finally:
        store.close()


def _record(tmp_path: Path, name: str, short_lived: bool) -> list[dict[str, Any]]:
    spans = tmp_path / f"{name}.jsonl"
    tracing.configure("cli", TelemetrySettings(spans_file=str(spans)), short_lived=short_lived)
    try:
        _operations(tmp_path / f"{name}_store")
    finally:
        tracing.shutdown()
    return [json.loads(line) for line in spans.read_text().splitlines()]


def _shape(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must agree: everything but ids, times and per-process values, with
    parentage as the position of the parent line (or "remote"/None)."""
    by_id = {r["span_id"]: i for i, r in enumerate(records)}
    shaped = []
    for r in records:
        attributes = dict(r["attributes"])
        attributes.pop("swarm.claim.wait_ms", None)
        parent = r["parent_span_id"]
        shaped.append(
            {
                "name": r["name"],
                "kind": r["kind"],
                "status": (r["status"], r["status_message"]),
                "attributes": attributes,
                "parent": None if parent is None else by_id.get(parent, "another line's trace"),
                "resource": sorted(r["resource"]),
                "keys": list(r),
            }
        )
    return shaped


@pytest.mark.parametrize("short_lived", [True, False], ids=["each-span", "batched"])
def test_lite_and_sdk_write_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_lived: bool
) -> None:
    assert not litetrace.needs_sdk()
    lite = _record(tmp_path, "lite", short_lived)
    assert tracing.enabled() is False
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")  # the SDK's default
    assert litetrace.needs_sdk()
    sdk = _record(tmp_path, "sdk", short_lived)
    assert _shape(lite) == _shape(sdk)
    manual = next(r for r in lite if r["name"] == "manual")["attributes"]
    assert len(manual) == 128 and "a4" not in manual and manual["a129"] == "again"
    assert manual["ints"] == [1, 2] and manual["x"] == 0.5
    # The item's operations continue the trace its enqueue started.
    for records in (lite, sdk):
        names = [r["name"] for r in records]
        assert names[:5] == [
            "swarm.add_work",
            "script",
            "swarm.claim",
            "swarm.progress",
            "swarm.complete",
        ]
        traces = [r["trace_id"] for r in records]
        assert traces[0] == traces[2] == traces[3] == traces[4] != traces[1]
    assert (
        lite[0]["resource"]["telemetry.sdk.version"] == sdk[0]["resource"]["telemetry.sdk.version"]
    )


def test_an_unsampled_parent_records_nothing(tmp_path: Path) -> None:
    tracer = litetrace.LiteTracer(str(tmp_path / "s.jsonl"), {})
    parent = trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(0))
    span = tracer.start_span(
        "child", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))
    )
    assert not span.is_recording() and span.get_span_context().trace_id == 1
    span.end()
    assert not (tmp_path / "s.jsonl").exists()


def test_other_otel_variables_need_the_sdk() -> None:
    assert litetrace.needs_sdk({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert litetrace.needs_sdk({"OTEL_RESOURCE_ATTRIBUTES": "a=b"})
    assert not litetrace.needs_sdk({"OTEL_SERVICE_NAME": "x", "OTEL_BSP_SCHEDULE_DELAY": "5"})
    assert not litetrace.needs_sdk({"OTEL_RESOURCE_ATTRIBUTES": ""})


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_a_long_lived_process_writes_its_spans_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans = tmp_path / "s.jsonl"
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    tracing.configure("agent", TelemetrySettings(spans_file=str(spans)), agent_id="agent_a")
    try:
        assert isinstance(tracing.tracer(), litetrace.LiteTracer)
        for index in range(3):
            tracing.tracer().start_span("op", attributes={"i": index}).end()
        # Written by the background thread within the delay: no flush, no shutdown.
        written = wait_for(lambda: len(_lines(spans)) == 3 and _lines(spans), timeout=10)
        assert [r["attributes"]["i"] for r in written] == [0, 1, 2]
        assert written[0]["resource"]["swarm.agent.id"] == "agent_a"
        tracing.tracer().start_span("last").end()
    finally:
        tracing.shutdown()  # writes what is still queued
    assert [r["name"] for r in _lines(spans)] == ["op", "op", "op", "last"]


@pytest.mark.parametrize("short_lived", [True, False], ids=["each-span", "batched"])
def test_secrets_never_reach_the_span_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_lived: bool
) -> None:
    secret = "sk-test-0123456789"
    monkeypatch.setenv("SERVICE_API_KEY", secret)
    spans = tmp_path / "s.jsonl"
    tracing.configure("agent", TelemetrySettings(spans_file=str(spans)), short_lived=short_lived)
    try:
        span = tracing.tracer().start_span("call", attributes={"url": f"http://x/?k={secret}"})
        span.set_status(trace.StatusCode.ERROR, f"401: bad key {secret}")
        span.end()
    finally:
        tracing.shutdown()
    assert secret not in spans.read_text()
    (line,) = _lines(spans)
    assert line["status_message"] == "401: bad key [redacted]"


def test_a_full_queue_drops_spans_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spans = tmp_path / "s.jsonl"
    tracer = litetrace.LiteTracer(str(spans), {}, batched=True, delay_s=60, max_queue=3)
    for index in range(5):
        tracer.start_span("op", attributes={"i": index}).end()
    with caplog.at_level(logging.WARNING, logger="orchestrator.telemetry.litetrace"):
        tracer.shutdown()
    assert [r["attributes"]["i"] for r in _lines(spans)] == [0, 1, 2]
    assert "2 span(s) dropped" in caplog.text


def test_a_span_json_cannot_hold_is_left_out_alone(tmp_path: Path) -> None:
    spans = tmp_path / "s.jsonl"
    tracer = litetrace.LiteTracer(str(spans), {}, batched=True, delay_s=60)
    tracer.start_span("before").end()
    tracer.start_span("bytes", attributes={"raw": b"\x00"}).end()  # the API allows bytes
    tracer.start_span("after").end()
    tracer.shutdown()
    assert [r["name"] for r in _lines(spans)] == ["before", "after"]


_FORKING = """
import os, sys
from orchestrator.telemetry import tracing
from orchestrator.telemetry.settings import TelemetrySettings

os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # nothing written before the fork
tracing.configure("agent", TelemetrySettings(spans_file=sys.argv[1]))
tracing.tracer().start_span("parent-before").end()
pid = os.fork()
if pid == 0:
    tracing.tracer().start_span("child").end()
    tracing.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
tracing.tracer().start_span("parent-after").end()
tracing.shutdown()
"""


def test_a_forked_child_does_not_write_its_parents_queue(tmp_path: Path) -> None:
    spans = tmp_path / "s.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FORKING), str(spans)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(r["name"] for r in _lines(spans))
    assert names == ["child", "parent-after", "parent-before"]
