"""Telemetry cost: claim throughput with spans on vs off (target: at most 15% slower),
and `swarm telemetry stats` on a 1M-span file (time, peak memory).

    python -m bench.telemetry_bench [--items 4000] [--procs 1,4] [--spans 1000000]
                                    [--swarm-items 1500] [--agents 4] [--rounds 3]
                                    [--write-results]

Throughput: every process claims and completes items (an agent's store traffic) on a
file store, alternately with tracing off and on, in the same run; then agents under
`swarm up` with no-op command items, off, on (litetrace: the default when nothing
needs the SDK) and on through the OpenTelemetry SDK (``OTEL_TRACES_SAMPLER`` set to the
SDK's own default, which only forces the SDK path). Each is run ``--rounds`` times,
alternating; the best of each and the median of the rounds' ratios are kept. Stats: the
real command in a child process, against a bare parsing loop over the same file (the
floor any reader pays) measured in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import prefill_file_store, run_processes, write_section


def _agent(
    store_dir: str, telemetry: bool, spans_file: str, index: int, ready: Any, go: Any, out: str
) -> None:
    from orchestrator.telemetry import tracing
    from orchestrator.telemetry.settings import TelemetrySettings
    from orchestrator.wiring import open_store

    if telemetry:
        tracing.configure("agent", TelemetrySettings(spans_file=spans_file))
    store = open_store(store_dir)
    agent_id = f"agent_{index + 1}_0000{index:04x}"
    store.claim(agent_id)  # warm up: open, replay
    ready.release()
    go.wait()
    latencies = []
    while True:
        started = time.perf_counter_ns()
        item = store.claim(agent_id)
        if item is None:
            break
        store.complete(item.work_item_id, agent_id=agent_id)
        latencies.append(time.perf_counter_ns() - started)
    tracing.shutdown()  # the flush is part of the cost
    Path(out).write_text(" ".join(map(str, latencies)))
    store.close()


def throughput(items: int, procs: int, telemetry: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
        store_dir = os.path.join(folder, "store")
        spans_file = os.path.join(folder, "telemetry_spans.jsonl")
        prefill_file_store(store_dir, items + 64)
        elapsed, latencies = run_processes(
            _agent,
            lambda i, ready, go, out: (store_dir, telemetry, spans_file, i, ready, go, out),
            procs,
            folder,
        )
        spans = 0
        if telemetry:
            with open(spans_file, "rb") as handle:
                spans = sum(1 for _ in handle)
    return len(latencies) / elapsed, spans


SDK_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}  # the SDK's default sampler


def swarm_throughput(
    agents: int, items: int, telemetry: bool, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """End to end: `swarm up --until-drained` with no-op command items (bench.swarm_bench)."""
    from bench.swarm_bench import throughput as swarm_items_per_s

    added = {"TELEMETRY_ENABLED": "true" if telemetry else "false"} | (env or {})
    os.environ.update(added)
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
            rate = swarm_items_per_s(Path(folder), agents, items)
            spans_file = Path(folder) / "telemetry_spans.jsonl"
            spans = len(spans_file.read_bytes().splitlines()) if spans_file.exists() else 0
    finally:
        for key in added:
            del os.environ[key]
    return rate, spans


def lite_floor_us(count: int = 20000) -> tuple[float, float]:
    """What one span costs litetrace on the hot path (create and end, queued), and
    writing it (serialise, redact, append), as an agent's background thread does."""
    from orchestrator.telemetry.litetrace import LiteTracer

    attributes = {"swarm.work.id": "work_1_0000abcd", "swarm.agent.id": "agent_1_0000abcd"}
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
        tracer = LiteTracer(
            os.path.join(folder, "spans.jsonl"),
            {"service.name": "swarmsh", "swarm.role": "agent", "process.pid": 4242},
            batched=True,
            delay_s=3600,
            max_queue=count,
            batch_size=count,  # the writer stays asleep until flush: each part alone
        )
        started = time.process_time()
        for _ in range(count):
            tracer.start_span("swarm.claim", attributes=attributes).end()
        hot = (time.process_time() - started) / count * 1e6
        started = time.process_time()
        tracer.flush()
        write = (time.process_time() - started) / count * 1e6
        tracer.shutdown()
    return hot, write


def _agent_items(mode: str, items: int, folder: str, out: Any) -> None:
    """In a fresh process: an agent's item without its command (claim, invoke_agent,
    progress, the backend call's span around a no-op, complete), ``items`` times."""
    import threading

    from agents import spans
    from agents.backends import Outcome
    from orchestrator.config import AgentGroup
    from orchestrator.telemetry import tracing
    from orchestrator.telemetry.settings import TelemetrySettings
    from orchestrator.wiring import open_store

    class Noop:
        def run(self, item: Any, cancel: Any) -> Outcome:
            return Outcome(True, output={"exit_code": 0, "stdout": ""})

    if mode == "sdk":
        os.environ.update(SDK_ENV)
    if mode != "off":
        spans_file = os.path.join(folder, "telemetry_spans.jsonl")
        tracing.configure("agent", TelemetrySettings(spans_file=spans_file), agent_id="a")
    store_dir = os.path.join(folder, "store")
    prefill_file_store(store_dir, items + 1)
    store = open_store(store_dir)
    group = AgentGroup(name="w", backend="command")
    backend, cancel, agent_id = Noop(), threading.Event(), "agent_1_00000001"
    store.claim(agent_id)  # warm up: open, replay
    started = time.process_time()  # CPU, all threads: the span writer's too
    while (item := store.claim(agent_id)) is not None:
        with spans.invoke_agent(agent_id, group, item):
            store.progress(item.work_item_id, 10, agent_id=agent_id)
            spans.run_backend(backend, group, item, cancel)  # type: ignore[arg-type]
            store.complete(item.work_item_id, result={"exit_code": 0}, agent_id=agent_id)
    tracing.shutdown()  # the last write is part of the cost
    out.send((time.process_time() - started) / items * 1e6)
    store.close()


def agent_item_cpu_us(mode: str, items: int = 3000) -> float:
    """CPU µs per agent item without its command (see ``_agent_items``): unlike
    items/s, hardly moved by other load on the machine."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
        proc = ctx.Process(target=_agent_items, args=(mode, items, folder, send))
        proc.start()
        cpu = float(receive.recv())
        proc.join()
    return cpu


def _ratio_row(label: str, items: int, runs: list[tuple[float, float]], spans: int) -> str:
    """Best of the rounds for each side, and the median of the rounds' own ratios."""
    best_off = max(off for off, _ in runs)
    best_on = max(on for _, on in runs)
    ratio = best_on / best_off
    median = statistics.median(on / off for off, on in runs)
    return (
        f"| {label} | {items} | {best_off:,.0f} | {best_on:,.0f} | {ratio:.2f}x"
        f" ({(ratio - 1) * 100:+.0f}%) | {median:.2f}x | {spans:,} |"
    )


def span_floor_us(count: int = 20000) -> tuple[float, float]:
    """What one span costs the SDK alone (no-op exporter), and our JSONL export of it."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    from orchestrator.telemetry.jsonl import JsonlSpanExporter

    kept: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            kept.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = provider.get_tracer("bench")
    attributes = {"swarm.work.id": "work_1_0000abcd", "swarm.agent.id": "agent_1_0000abcd"}
    started = time.process_time()
    for _ in range(count):
        tracer.start_span("swarm.claim", attributes=attributes).end()
    sdk = (time.process_time() - started) / count * 1e6
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
        exporter = JsonlSpanExporter(os.path.join(folder, "spans.jsonl"))
        started = time.process_time()
        for index in range(0, count, 512):
            exporter.export(kept[index : index + 512])
        export = (time.process_time() - started) / count * 1e6
    return sdk, export


def make_span_file(path: str, spans: int) -> int:
    """Realistic lines: claim/progress/complete/chat spans with full resources."""
    now = time.time_ns()
    resource_attrs = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.2",
        "service.name": "swarmsh",
        "swarm.role": "agent",
        "process.pid": 4242,
        "host.name": "bench",
        "swarm.agent.id": "agent_1795566675666007185_58ec6225",
    }
    names = ["swarm.claim", "swarm.progress", "swarm.complete", "chat qwen3", "execute command"]
    with open(path, "wb") as handle:
        batch = []
        for index in range(spans):
            name = names[index % len(names)]
            end = now - (spans - index) * 50_000
            attributes: dict[str, Any] = {
                "swarm.work.id": f"work_1795566675666007185_{index:08x}",
                "swarm.work.type": "analysis",
                "swarm.agent.id": "agent_1795566675666007185_58ec6225",
                "swarm.operation": name,
            }
            if name.startswith("chat"):
                attributes |= {
                    "gen_ai.provider.name": "ollama",
                    "gen_ai.request.model": "qwen3",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 40,
                }
            record = {
                "trace_id": f"{index:032x}",
                "span_id": f"{index:016x}",
                "parent_span_id": None,
                "name": name,
                "kind": "INTERNAL",
                "start_time": "2026-11-25T00:00:00.000000Z",
                "end_time": "2026-11-25T00:00:00.000100Z",
                "start_unix_nano": end - 100_000,
                "end_unix_nano": end,
                "duration_ms": 0.1 + (index % 97) / 10,
                "status": "ERROR" if index % 50 == 0 else "OK",
                "status_message": None,
                "attributes": attributes,
                "resource": resource_attrs,
            }
            batch.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            if len(batch) == 10_000:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))
    return os.path.getsize(path)


def bare_parse(path: str) -> float:
    started = time.perf_counter()
    loads = orjson.loads
    with open(path, "rb") as handle:
        for line in handle:
            loads(line)
    return time.perf_counter() - started


# Linux carries a process's peak RSS across fork and exec: a child of this (large)
# process would report our peak. A small helper launches the command instead.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    proc = subprocess.Popen(sys.argv[2:], stdout=out)
    _, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage.ru_maxrss)
"""


def stats_command(path: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, spans) of `swarm telemetry stats --window all --json`."""
    swarm = str(Path(sys.executable).with_name("swarm"))
    env = os.environ | {"TELEMETRY_SPANS_FILE": path}
    output = path + ".stats.json"
    measured = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            output,
            swarm,
            "telemetry",
            "stats",
            "-w",
            "all",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(path),
    )
    code, elapsed, peak_kb = measured.stdout.split()
    if code != "0":
        raise RuntimeError(f"swarm telemetry stats exited with {code}")
    spans = int(orjson.loads(Path(output).read_bytes())["spans"])
    return float(elapsed), int(peak_kb) / 1024, spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--procs", default="1,4")
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--swarm-items", type=int, default=1500)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()

    rows = []
    for procs in [int(p) for p in args.procs.split(",")]:
        runs: list[tuple[float, float]] = []
        spans = 0
        for _ in range(args.rounds):
            off, _ = throughput(args.items, procs, False)
            on, count = throughput(args.items, procs, True)
            runs.append((off, on))
            spans = max(spans, count)
        rows.append(_ratio_row(str(procs), args.items, runs, spans))
        print(rows[-1], flush=True)

    lite_runs: list[tuple[float, float]] = []
    sdk_runs: list[tuple[float, float]] = []
    lite_spans = sdk_spans = 0
    for _ in range(args.rounds):
        off, _ = swarm_throughput(args.agents, args.swarm_items, False)
        on, lite_count = swarm_throughput(args.agents, args.swarm_items, True)
        sdk, sdk_count = swarm_throughput(args.agents, args.swarm_items, True, SDK_ENV)
        lite_runs.append((off, on))
        sdk_runs.append((off, sdk))
        lite_spans, sdk_spans = max(lite_spans, lite_count), max(sdk_spans, sdk_count)
    swarm_rows = [
        _ratio_row(f"{args.agents} agents", args.swarm_items, lite_runs, lite_spans),
        _ratio_row(f"{args.agents} agents, SDK", args.swarm_items, sdk_runs, sdk_spans),
    ]
    print(*swarm_rows, sep="\n", flush=True)

    cpu: dict[str, list[float]] = {"off": [], "lite": [], "sdk": []}
    for _ in range(args.rounds):
        for mode in cpu:
            cpu[mode].append(agent_item_cpu_us(mode))
    off_us, lite_us_item, sdk_us_item = (statistics.median(cpu[m]) for m in cpu)
    cpu_row = (
        f"| {off_us:.0f} µs | {lite_us_item:.0f} µs (+{lite_us_item - off_us:.0f} µs,"
        f" {off_us / lite_us_item:.2f}x) | {sdk_us_item:.0f} µs"
        f" (+{sdk_us_item - off_us:.0f} µs, {off_us / sdk_us_item:.2f}x) |"
    )
    print(cpu_row, flush=True)

    sdk_us, export_us = span_floor_us()
    lite_us, lite_write_us = lite_floor_us()
    floor_row = (
        f"| {sdk_us:.1f} µs | {export_us:.1f} µs | {lite_us:.1f} µs | {lite_write_us:.1f} µs |"
    )
    print(floor_row, flush=True)

    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as folder:
        path = os.path.join(folder, "telemetry_spans.jsonl")
        size = make_span_file(path, args.spans)
        floor = bare_parse(path)
        seconds, peak_mb, counted = stats_command(path)
    assert counted == args.spans, (counted, args.spans)
    stats_row = (
        f"| {args.spans:,} | {size / 1e6:,.0f} MB | {seconds:.1f} s | {peak_mb:.0f} MB |"
        f" {floor:.1f} s | {seconds / floor:.2f}x |"
    )
    print(stats_row)

    body = "\n".join(
        [
            "## Telemetry cost",
            "",
            f"`python -m bench.telemetry_bench --items {args.items} --procs {args.procs}"
            f" --spans {args.spans} --swarm-items {args.swarm_items} --agents {args.agents}"
            f" --rounds {args.rounds} --write-results` ({os.cpu_count()} CPUs,"
            f" {time.strftime('%Y-%m-%d')}).",
            "",
            "Throughput, tracing off vs on (span file, batched), alternating rounds in the"
            f" same run: the best of {args.rounds} for each side, and the median of the"
            " rounds' own on/off ratios. Target (issue 20): agents with no-op command items"
            " lose at most 15% (on / off ≥ 0.85x). First the bare store loop (claim +"
            " complete, nothing else: the worst case), then agents under `swarm up`:"
            " spans by litetrace (the default when nothing needs the SDK), then through the"
            " OpenTelemetry SDK (what an OTLP endpoint, sampler or limits variable selects;"
            " its 'off' is the same run's off).",
            "",
            "| processes | items | off (items/s) | on (items/s) | on / off (best) |"
            " on / off (median) | spans written |",
            "|---|---|---|---|---|---|---|",
            *rows,
            *swarm_rows,
            "",
            "CPU per agent item without its command (claim, `invoke_agent`, progress, the"
            " backend call's span around a no-op, complete; one process, all its threads,"
            f" median of {args.rounds}): what tracing adds to an agent's own work, hardly"
            " moved by other load on the machine. In parentheses: the time added, and"
            " off / on (the items/s such an agent would keep if that were all it did).",
            "",
            "| off | litetrace | SDK |",
            "|---|---|---|",
            cpu_row,
            "",
            "What one span costs (CPU), measured in the same run: the OpenTelemetry SDK"
            " creating and ending it (no exporter) and our JSONL exporter writing it;"
            " litetrace creating,"
            " ending and queueing it (the agent's hot path) and its background thread"
            " writing it (serialise, redact, append).",
            "",
            "| SDK per span | JSONL export per span | litetrace per span |"
            " litetrace write per span |",
            "|---|---|---|---|",
            floor_row,
            "",
            "`swarm telemetry stats --window all` on a generated span file (child process;"
            " peak RSS), against a bare orjson loop over the same lines in this process.",
            "",
            "| spans | file | stats | peak RSS | bare parse | stats / bare |",
            "|---|---|---|---|---|---|",
            stats_row,
        ]
    )
    if args.write_results:
        write_section("telemetry", body)


if __name__ == "__main__":
    main()
