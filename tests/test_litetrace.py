"""The CLI's tracer without the SDK writes the lines the SDK would: same operations,
parentage, attributes, statuses and resource keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from orchestrator.errors import NotFound
from orchestrator.records import WorkItem
from orchestrator.telemetry import litetrace, tracing
from orchestrator.telemetry.settings import TelemetrySettings
from orchestrator.wiring import open_store


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
        span = tracing.tracer().start_span("manual")
        span.set_status(trace.StatusCode.ERROR, "broken")
        span.set_status(trace.StatusCode.UNSET)
        span.end()
    finally:
        store.close()


def _record(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    spans = tmp_path / f"{name}.jsonl"
    tracing.configure("cli", TelemetrySettings(spans_file=str(spans)), short_lived=True)
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


def test_lite_and_sdk_write_the_same_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not litetrace.needs_sdk()
    lite = _record(tmp_path, "lite")
    assert tracing.enabled() is False
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")  # the SDK's default
    assert litetrace.needs_sdk()
    sdk = _record(tmp_path, "sdk")
    assert _shape(lite) == _shape(sdk)
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
