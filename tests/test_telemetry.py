"""Spans: the JSONL file under many writers, one trace per work item across processes,
OTLP export to a collector, GenAI attributes, and telemetry turned off."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agents import spans as agent_spans
from orchestrator.config import AgentGroup, TelemetryConfig
from orchestrator.records import WorkItem
from orchestrator.store.file import FileStore
from orchestrator.telemetry import tracing
from orchestrator.telemetry.jsonl import SCHEMA_KEYS
from orchestrator.telemetry.reader import ReadCounts, iter_spans
from orchestrator.telemetry.settings import TelemetrySettings
from orchestrator.telemetry.spanfile import SpanFileWriter

from . import workers
from .conftest import SWARM, wait_for
from .fake_llm import FakeLLM, claude_ok, ollama_ok
from .test_supervisor import write_config


def read_spans(path: Path) -> list[dict[str, Any]]:
    lines = path.read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def run(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    base.pop("AGENT_ID", None)
    base["SWARM_STORE"] = str(root / "store")
    return subprocess.run(
        [SWARM, *args], cwd=root, env=base | (env or {}), capture_output=True, text=True
    )


def test_settings_and_config_section_have_the_same_keys() -> None:
    assert set(TelemetryConfig.model_fields) == set(TelemetrySettings._fields)


def test_many_processes_write_whole_lines(tmp_path: Path) -> None:
    spans_file = str(tmp_path / "telemetry_spans.jsonl")
    writers = workers.start_span_writers(spans_file, 6, 1500)
    procs = writers.procs
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    spans = read_spans(Path(spans_file))  # raises on any torn or interleaved line
    assert len(spans) == 6 * 1500
    per_process = Counter(span["attributes"]["test.pid"] for span in spans)
    assert sorted(per_process.values()) == [1500] * 6
    assert all(tuple(span) == SCHEMA_KEYS for span in spans)
    first = spans[0]
    assert len(first["trace_id"]) == 32 and len(first["span_id"]) == 16
    assert first["end_unix_nano"] >= first["start_unix_nano"]
    assert first["resource"]["service.name"] == "swarmsh"
    assert first["resource"]["swarm.role"] == "agent"


def test_a_torn_tail_is_closed_and_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b'{"name": "whole"}\n{"name": "half-writ')  # a writer killed mid-line
    writer = SpanFileWriter(str(path))
    assert writer.append(b'{"end_unix_nano": 1}\n')
    assert path.read_bytes().splitlines()[-1] == b'{"end_unix_nano": 1}'
    counts = ReadCounts()
    assert [s["end_unix_nano"] for s in iter_spans(str(path), counts=counts)] == [1]
    assert counts.bad_lines == 2  # the half line, and the line without an end time

    # A write the file system refuses part-way (here: the file size limit) is undone.
    size = path.stat().st_size
    code = f"""
import resource, signal
from orchestrator.telemetry.spanfile import SpanFileWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 100}, {size + 100}))
ok = SpanFileWriter({str(path)!r}).append(b'{{"a": "' + b'y' * 5000 + b'"}}\\n')
raise SystemExit(0 if ok is False else 1)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "spans dropped" in proc.stderr
    assert path.stat().st_size == size


def test_a_work_item_is_one_trace_across_cli_processes(tmp_path: Path) -> None:
    work_id = run(tmp_path, "add", "build", "compile", "-q").stdout.strip()
    agent = {"AGENT_ID": "agent_1_0000aaaa"}
    assert run(tmp_path, "claim", "--next", "-q", env=agent).stdout.strip() == work_id
    assert run(tmp_path, "progress", work_id, "50", env=agent).returncode == 0
    assert run(tmp_path, "complete", work_id, env=agent).returncode == 0
    refused = run(tmp_path, "progress", work_id, "60", env=agent)
    assert refused.returncode == 3

    spans = read_spans(tmp_path / "telemetry_spans.jsonl")
    names = [span["name"] for span in spans]
    assert names == [
        "swarm.add_work",
        "swarm.claim",
        "swarm.progress",
        "swarm.complete",
        "swarm.progress",
    ]
    assert len({span["trace_id"] for span in spans}) == 1
    assert len({span["resource"]["process.pid"] for span in spans}) == 5
    root = spans[0]
    assert root["parent_span_id"] is None
    assert all(span["parent_span_id"] == root["span_id"] for span in spans[1:])
    assert spans[1]["attributes"]["swarm.agent.id"] == "agent_1_0000aaaa"
    assert spans[3]["attributes"]["swarm.work.status"] == "completed"
    failed = spans[4]
    assert failed["status"] == "ERROR" and failed["attributes"]["error.type"] == "Conflict"
    assert failed["attributes"]["swarm.exit_code"] == 3


def test_telemetry_enabled_false_writes_nothing(tmp_path: Path) -> None:
    off = {"TELEMETRY_ENABLED": "false"}
    assert run(tmp_path, "add", "build", "compile", env=off).returncode == 0
    assert not (tmp_path / "telemetry_spans.jsonl").exists()
    bad = run(tmp_path, "add", "build", "compile", env={"TELEMETRY_ENABLED": "maybe"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == "swarm: error: TELEMETRY_ENABLED='maybe': use true or false"


def test_swarm_up_links_enqueue_agent_work_and_completion(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[[agents]]\nname = "workers"\ncount = 2\n',
        '[[work]]\nwork_type = "echo"\ndescription = "say hi"\ncount = 4\n'
        'payload = { argv = ["echo", "hi"] }\n'
        '[[work]]\nwork_type = "echo"\ndescription = "fail"\ncount = 1\n'
        'payload = { argv = ["false"] }\n',
    )
    proc = run(tmp_path, "up", "--until-drained")
    assert proc.returncode == 1 and "1 item(s) ended dead" in proc.stderr, proc.stderr  # "fail"
    spans = read_spans(tmp_path / "telemetry_spans.jsonl")
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    enqueues = [s for s in spans if s["name"] == "swarm.add_work"]
    assert len(enqueues) == 5
    stored = FileStore(tmp_path / "store").list_work()
    assert {s["attributes"]["swarm.work.id"] for s in enqueues} == {i.work_item_id for i in stored}
    for enqueue in enqueues:
        assert enqueue["resource"]["swarm.role"] == "supervisor"
        trace = by_trace[enqueue["trace_id"]]
        roles = {s["resource"]["swarm.role"] for s in trace}
        assert roles == {"supervisor", "agent"}
        names = Counter(s["name"] for s in trace)
        assert names["swarm.claim"] >= 1 and names["invoke_agent workers"] >= 1
        assert names["execute command"] >= 1
        assert names["swarm.complete"] + names["swarm.fail"] >= 1
        invoke = next(s for s in trace if s["name"] == "invoke_agent workers")
        assert invoke["attributes"]["gen_ai.operation.name"] == "invoke_agent"
        assert invoke["attributes"]["gen_ai.agent.name"] == "workers"
        assert invoke["attributes"]["gen_ai.agent.id"] == invoke["resource"]["swarm.agent.id"]
        children = [s for s in trace if s["parent_span_id"] == invoke["span_id"]]
        assert {"swarm.progress", "execute command"} <= {s["name"] for s in children}
    failed = [s for s in spans if s["name"] == "execute command" and s["status"] == "ERROR"]
    assert failed and failed[0]["attributes"]["error.type"] == "exit_code"
    starts = [s for s in spans if s["name"] == "swarm.agent.start"]
    assert len(starts) == 2
    # Agents deregister themselves; the supervisor must not try again and fail.
    assert not [s for s in spans if s["name"] == "swarm.deregister" and s["status"] == "ERROR"]


# -- GenAI spans ---------------------------------------------------------------------------


@pytest.fixture
def spans_file(tmp_path: Path) -> Any:
    path = tmp_path / "spans.jsonl"
    tracing.configure("agent", TelemetrySettings(spans_file=str(path)), short_lived=True)
    yield path
    tracing.shutdown()


def _llm_item() -> WorkItem:
    return WorkItem("work_1_0000aaaa", "math", "what is 2+2?")


def test_ollama_call_is_a_genai_chat_span(spans_file: Path) -> None:
    from agents.backends.ollama import OllamaBackend

    group = AgentGroup(name="g", backend="ollama", model="qwen3", retries=0)
    with FakeLLM() as llm:
        llm.replies.append(ollama_ok("4", model="qwen3:8b"))
        backend = OllamaBackend(group.model_copy(update={"host": llm.url}))
        outcome = agent_spans.run_backend(backend, group, _llm_item(), threading.Event())
    assert outcome.ok
    (span,) = read_spans(spans_file)
    attributes = span["attributes"]
    assert span["name"] == "chat qwen3" and span["kind"] == "CLIENT"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["gen_ai.request.model"] == "qwen3"
    assert attributes["gen_ai.response.model"] == "qwen3:8b"
    assert attributes["gen_ai.usage.input_tokens"] == 21
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["server.address"] == "127.0.0.1"
    assert "gen_ai.input.messages" not in attributes  # content is opt-in
    assert "2+2" not in spans_file.read_text()


def test_claude_call_records_usage_and_content_only_when_opted_in(
    spans_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.backends.claude import ClaudeBackend

    key = "sk-ant-test-secret-key"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with FakeLLM() as llm:
        group = AgentGroup(name="g", backend="claude", model="claude-x", host=llm.url, retries=0)
        llm.replies.append(claude_ok("four", model="claude-x-2026"))
        backend = ClaudeBackend(group)
        agent_spans.run_backend(backend, group, _llm_item(), threading.Event(), True)
        llm.replies.append(claude_ok("five"))
        agent_spans.run_backend(backend, group, _llm_item(), threading.Event(), False)
    with_content, without = read_spans(spans_file)
    attributes = with_content["attributes"]
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.response.model"] == "claude-x-2026"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        33,
        9,
    )
    assert attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert "2+2" in attributes["gen_ai.input.messages"]
    assert "four" in attributes["gen_ai.output.messages"]
    assert "gen_ai.input.messages" not in without["attributes"]
    assert key not in spans_file.read_text()


def test_an_unreachable_model_is_an_error_span(spans_file: Path) -> None:
    from agents.backends.ollama import OllamaBackend

    group = AgentGroup(name="g", backend="ollama", host="http://127.0.0.1:9", retries=0)
    outcome = agent_spans.run_backend(OllamaBackend(group), group, _llm_item(), threading.Event())
    assert not outcome.ok
    (span,) = read_spans(spans_file)
    assert span["status"] == "ERROR" and span["attributes"]["error.type"] == "connection"


# -- OTLP ----------------------------------------------------------------------------------


class Collector:
    """An OTLP/HTTP receiver: decodes ExportTraceServiceRequest protobufs."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes = {
                                a.key: a.value.string_value or a.value.int_value
                                for a in span.attributes
                            }
                            collector.spans.append((span.name, attributes | {"_path": self.path}))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_spans_reach_an_otlp_collector_with_its_headers(tmp_path: Path) -> None:
    collector = Collector()
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer test-token",
        }
        work_id = run(tmp_path, "add", "build", "compile", "-q", env=env).stdout.strip()
        assert run(tmp_path, "claim", "--next", "-q", env=env | {"AGENT_ID": "agent_1_0000aaaa"})
    finally:
        collector.close()
    names = [name for name, _ in collector.spans]
    assert names == ["swarm.add_work", "swarm.claim"]
    assert all(attrs["swarm.work.id"] == work_id for _, attrs in collector.spans)
    assert all(attrs["_path"] == "/v1/traces" for _, attrs in collector.spans)
    assert all(h["authorization"] == "Bearer test-token" for h in collector.headers)
    # The span file gets them too.
    assert len(read_spans(tmp_path / "telemetry_spans.jsonl")) == 2


def test_an_agent_with_an_endpoint_exports_through_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.telemetry.litetrace import LiteTracer

    collector = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    spans_file = tmp_path / "spans.jsonl"
    try:
        tracing.configure("agent", TelemetrySettings(spans_file=str(spans_file)), agent_id="a_1")
        assert not isinstance(tracing.tracer(), LiteTracer)
        tracing.tracer().start_span("op", attributes={"swarm.work.id": "work_1"}).end()
        tracing.shutdown()
    finally:
        collector.close()
    assert collector.spans == [("op", {"swarm.work.id": "work_1", "_path": "/v1/traces"})]
    assert [s["name"] for s in read_spans(spans_file)] == ["op"]


def test_otel_traces_exporter_selects_the_exporters(tmp_path: Path) -> None:
    collector = Collector()
    try:
        to_collector = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        # none: not to the collector, although an endpoint is set; the span file still.
        quiet = run(
            tmp_path, "add", "build", "a", env=to_collector | {"OTEL_TRACES_EXPORTER": "none"}
        )
        assert quiet.returncode == 0, quiet.stderr
        # console: each span as JSON on stderr; stdout stays the command's own output.
        both = {"OTEL_TRACES_EXPORTER": "console, otlp"}
        shown = run(tmp_path, "add", "build", "b", "--json", env=to_collector | both)
        assert shown.returncode == 0, shown.stderr
    finally:
        collector.close()
    assert json.loads(shown.stdout)["description"] == "b"
    assert '"name": "swarm.add_work"' in shown.stderr
    assert [name for name, _ in collector.spans] == ["swarm.add_work"]  # b's only
    assert len(read_spans(tmp_path / "telemetry_spans.jsonl")) == 2

    for wrong in ("zipkin", "none,console", "otlp,"):
        refused = run(tmp_path, "add", "build", "c", env={"OTEL_TRACES_EXPORTER": wrong})
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == (
            f"swarm: error: OTEL_TRACES_EXPORTER={wrong!r}: use otlp, console or both"
            " (comma-separated), or none\n"
        )
    assert len(read_spans(tmp_path / "telemetry_spans.jsonl")) == 2


def test_a_collector_that_is_down_does_not_hang_a_command(tmp_path: Path) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    proc = run(tmp_path, "add", "build", "compile", env=env)
    assert proc.returncode == 0
    assert len(read_spans(tmp_path / "telemetry_spans.jsonl")) == 1


def test_sigkill_of_writers_leaves_parsable_lines(tmp_path: Path) -> None:
    spans_file = str(tmp_path / "telemetry_spans.jsonl")
    writers = workers.start_span_writers(spans_file, 4, 100_000)
    procs = writers.procs
    wait_for(lambda: os.path.getsize(spans_file) >= 2_000_000, timeout=30, every=0.01)
    for proc in procs:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    counts = ReadCounts()
    whole = sum(1 for _ in iter_spans(spans_file, counts=counts))
    assert whole > 500
    assert counts.bad_lines <= len(procs)  # at most the line each killed writer was in


def test_claim_of_a_new_item_starts_its_trace(tmp_path: Path) -> None:
    agent = {"AGENT_ID": "agent_1_0000aaaa"}
    work_id = run(tmp_path, "claim", "fix_bug", "login fails", "high", "-q", env=agent)
    assert run(tmp_path, "complete", work_id.stdout.strip(), env=agent).returncode == 0
    claim, complete = read_spans(tmp_path / "telemetry_spans.jsonl")
    assert claim["name"] == "swarm.claim_new" and claim["parent_span_id"] is None
    assert claim["attributes"]["swarm.operation"] == "claim_new"
    assert claim["attributes"]["swarm.agent.id"] == "agent_1_0000aaaa"
    assert complete["trace_id"] == claim["trace_id"]
    assert complete["parent_span_id"] == claim["span_id"]


def test_an_item_without_id_gets_it_before_its_enqueue_span(spans_file: Path) -> None:
    from orchestrator.wiring import open_store

    store = open_store(spans_file.parent / "store")
    work_id = store.add_work(WorkItem("", "build", "compile"))
    store.close()
    assert work_id.startswith("work_")
    tracing.flush()
    (span,) = read_spans(spans_file)
    assert span["attributes"]["swarm.work.id"] == work_id


def test_an_enqueue_that_finds_its_key_taken_names_the_item_present(spans_file: Path) -> None:
    from orchestrator.wiring import open_store

    store = open_store(spans_file.parent / "store")
    first = store.add_work(WorkItem("", "build", "compile", key="build:main"))
    assert store.add_work(WorkItem("", "build", "compile", key="build:main")) == first
    batch = store.add_many([WorkItem("", "build", "x", key="build:main"), WorkItem("", "t", "y")])
    store.close()
    tracing.flush()
    spans = read_spans(spans_file)
    enqueues = [s["attributes"] for s in spans if s["name"] == "swarm.add_work"]
    assert [(a["swarm.work.id"], a.get("swarm.work.already_present")) for a in enqueues] == [
        (first, None),
        (first, True),
        (first, True),
        (batch[1], None),
    ]
    (many,) = [s for s in spans if s["name"] == "swarm.add_many"]
    assert (many["attributes"]["swarm.work.count"], many["attributes"]["swarm.work.added"]) == (
        2,
        1,
    )
