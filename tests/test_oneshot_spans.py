"""A one-shot command's spans without the OpenTelemetry API (``oneshot``) are the lines
the SDK writes for the same store operations: names, parentage, statuses, attributes,
resource keys and traces; a process that then asks for the API's tracer moves to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import NotFound
from orchestrator.records import WorkItem
from orchestrator.telemetry import tracing
from orchestrator.telemetry.oneshot import OneShotSpans
from orchestrator.telemetry.settings import TelemetrySettings
from orchestrator.wiring import open_store

from .test_litetrace import _shape

_UNSAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}


def _operations(store_dir: Path) -> None:
    store = open_store(store_dir)
    try:
        store.add_work(WorkItem("work_1_0000aaaa", "feature", "first", priority="high"))
        store.claim("agent_a")
        store.progress("work_1_0000aaaa", 40, agent_id="agent_a")
        store.complete_and_enqueue(
            "work_1_0000aaaa",
            [WorkItem("work_5_0000eeee", "review", "after the first")],
            agent_id="agent_a",
        )
        store.claim_new("agent_a", WorkItem("work_2_0000bbbb", "bug", "second", team="core"))
        with pytest.raises(NotFound):
            store.fail("work_404", "why", agent_id="agent_a")
        store.add_many(
            [
                WorkItem("work_3_0000cccc", "feature", "third"),
                WorkItem("work_4_0000dddd", "feature", "fourth", trace_context=_UNSAMPLED),
            ]
        )
        store.claim_id("agent_b", "work_4_0000dddd")  # its trace is not sampled: no span
        store.complete("work_2_0000bbbb", "success", 2, agent_id="agent_a")
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


def test_oneshot_and_sdk_write_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oneshot = _record(tmp_path, "oneshot")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")  # the SDK's default
    sdk = _record(tmp_path, "sdk")
    assert _shape(oneshot) == _shape(sdk)
    names = [r["name"] for r in oneshot]
    assert names == [
        "swarm.add_work",
        "swarm.claim",
        "swarm.progress",
        "swarm.complete",
        "swarm.add_work",  # the follow-up, ended after the completion
        "swarm.claim_new",
        "swarm.fail",
        "swarm.add_work",
        "swarm.add_many",  # the unsampled item's enqueue is not recorded
        "swarm.complete",
    ]
    for records in (oneshot, sdk):
        traces = [r["trace_id"] for r in records]
        # The first item's operations continue the trace its enqueue began; its
        # follow-up begins its own; the batch's item begins its own, under no parent.
        assert traces[0] == traces[1] == traces[2] == traces[3]
        assert len({traces[0], traces[4], traces[5], traces[7], traces[8]}) == 5
        assert traces[9] == traces[5]
        assert records[6]["status"] == "ERROR" and "work_404" in records[6]["status_message"]
        assert records[7]["parent_span_id"] is None


def test_a_process_that_asks_for_the_api_tracer_moves_to_it(tmp_path: Path) -> None:
    spans = tmp_path / "s.jsonl"
    tracing.configure("cli", TelemetrySettings(spans_file=str(spans)), short_lived=True)
    store = open_store(tmp_path / "store")
    try:
        assert isinstance(tracing._spans, OneShotSpans)  # an item command's engine
        store.add_work(WorkItem("work_1_0000aaaa", "feature", "first"))
        item = store.claim("agent_a")
        assert item is not None
        # As an intelligent claim or an agent does: work in the item's trace, under
        # the API's current span; the store's span nests under it.
        with tracing.tracer().start_as_current_span(
            "work", context=tracing.context_of(item.trace_context)
        ):
            store.progress(item.work_item_id, 50, agent_id="agent_a")
        assert not isinstance(tracing._spans, OneShotSpans)
    finally:
        store.close()
        tracing.shutdown()
    records = [json.loads(line) for line in spans.read_text().splitlines()]
    by_name = {r["name"]: r for r in records}
    assert [r["name"] for r in records] == [
        "swarm.add_work",
        "swarm.claim",
        "swarm.progress",
        "work",
    ]
    assert by_name["swarm.progress"]["parent_span_id"] == by_name["work"]["span_id"]
    assert len({r["trace_id"] for r in records}) == 1
    assert len({r["resource"]["service.instance.id"] for r in records}) == 1


def test_secrets_never_reach_the_span_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789"
    monkeypatch.setenv("SERVICE_API_KEY", secret)
    spans = tmp_path / "s.jsonl"
    tracing.configure("cli", TelemetrySettings(spans_file=str(spans)), short_lived=True)
    try:
        span = tracing.start_span("call", attributes={"url": f"http://x/?k={secret}"})
        tracing.set_error(span, f"401: bad key {secret}")
        span.end()
        # A secret across the point where a long error is cut: no part of it is kept.
        cut = tracing.start_span("long")
        tracing.set_error(cut, "x" * 490 + secret)
        cut.end()
    finally:
        tracing.shutdown()
    assert secret not in spans.read_text() and secret[:10] not in spans.read_text()
    line, long = [json.loads(raw) for raw in spans.read_text().splitlines()]
    assert line["status_message"] == "401: bad key [redacted]"
    assert long["status_message"] == "x" * 490 + "[redacted]"


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # 00 has no more
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "garbage",
    ],
)
def test_a_traceparent_the_api_refuses_is_refused(traceparent: str) -> None:
    from orchestrator.telemetry.apispans import context_of

    assert context_of({"traceparent": traceparent}) is None
    assert OneShotSpans.parent_of({"traceparent": traceparent}) is None


def test_a_traceparent_of_a_later_version_is_read_as_the_api_reads_it() -> None:
    header = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more"
    parent = OneShotSpans.parent_of({"traceparent": header})
    assert parent is not None and parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    from opentelemetry import trace

    from orchestrator.telemetry.apispans import context_of

    context = context_of({"traceparent": header})
    assert context is not None
    assert trace.get_current_span(context).get_span_context().span_id == parent.span_id
