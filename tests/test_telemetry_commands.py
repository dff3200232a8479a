"""The commands computed from spans and the store: health (its documented deductions),
stats windows, metrics formats, the supervisor's /metrics, diagrams, archive under
concurrent writers, monitor, validate."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import select
import socket
import subprocess
import termios
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.records import Agent, WorkItem
from orchestrator.store.file import FileStore
from orchestrator.telemetry.stats import Sketch

from . import workers
from .conftest import SWARM, wait_for
from .test_supervisor import write_config

HOUR_NS = 3600 * 10**9


def span(
    name: str,
    end_ns: int,
    duration_ms: float = 1.0,
    error: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    attributes = {k.replace("__", "."): v for k, v in attributes.items()}
    if name.startswith("swarm."):
        attributes.setdefault("swarm.store.backend", "file")
    if error:
        attributes["error.type"] = error
    start = end_ns - int(duration_ms * 1e6)
    return {
        "trace_id": "0" * 31 + "1",
        "span_id": os.urandom(8).hex(),
        "parent_span_id": None,
        "name": name,
        "kind": "INTERNAL",
        "start_time": "",
        "end_time": "",
        "start_unix_nano": start,
        "end_unix_nano": end_ns,
        "duration_ms": duration_ms,
        "status": "ERROR" if error else "OK",
        "status_message": None,
        "attributes": attributes,
        "resource": {"service.name": "swarmsh", "swarm.role": "agent"},
    }


def write_spans(path: Path, spans: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in spans))


def swarm(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    base = {k: v for k, v in base.items() if not k.startswith("HEALTH_") and k != "AGENT_ID"}
    base["SWARM_STORE"] = str(root / "store")
    return subprocess.run(
        [SWARM, *args], cwd=root, env=base | env, capture_output=True, text=True, timeout=120
    )


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def supervisor_state(root: Path, agents: dict[str, str], pid: int) -> None:
    """real_agents/supervisor.json as a supervisor (pid ``pid``) leaves it: its slots'
    names by agent id."""
    rows = [
        {"name": name, "group": name.rsplit("-", 1)[0], "agent_id": agent_id, "pid": None}
        | {"state": "running", "restarts": 0}
        for agent_id, name in agents.items()
    ]
    state = {"pid": pid, "host": socket.gethostname(), "status": "running", "agents": rows}
    (root / "real_agents").mkdir(exist_ok=True)
    (root / "real_agents" / "supervisor.json").write_bytes(orjson.dumps(state | {"groups": {}}))


def crafted_swarm(root: Path) -> None:
    """4 items finished (1 dead), 2 claims nobody will finish, 1 dead agent (started by
    a supervisor that was killed), and 100 spans two hours old: 10 errors, store p95
    750 ms."""
    store = FileStore(root / "store", max_attempts=1)
    for index in range(6):
        store.add_work(WorkItem(f"work_1_0000000{index}", "build", f"item {index}"))
    for _ in range(4):
        item = store.claim("agent_1_aaaaaaaa")
        assert item is not None
        if item.work_item_id.endswith("3"):
            store.fail(item.work_item_id, "broke", retry=True)  # last attempt: dead
        else:
            store.complete(item.work_item_id)
    store.register(Agent("agent_1_cccccccc", host=socket.gethostname(), pid=dead_pid()))
    store.claim("agent_1_cccccccc")  # held by a dead agent
    store.claim("agent_1_bbbbbbbb")  # held by an agent that never registered
    store.close()
    supervisor_state(root, {"agent_1_cccccccc": "builder-1"}, dead_pid())
    now = time.time_ns()
    spans = []
    for index in range(100):
        duration = 750.0 if index >= 90 else 10.0  # p95 = 750 ms
        error = "Conflict" if index < 10 else None
        spans.append(span("swarm.claim", now - 2 * HOUR_NS + index, duration, error))
    write_spans(root / "telemetry_spans.jsonl", spans)


def test_health_deductions_follow_the_documented_formula(tmp_path: Path) -> None:
    crafted_swarm(tmp_path)
    proc = swarm(tmp_path, "health", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    breakdown = report["issue_breakdown"]
    # p95 comes from a sketch accurate to 1%: 750 ms +- 7.5 -> 7.5 +- 0.25 points.
    assert breakdown.pop("latency") == pytest.approx(7.5, abs=0.25)  # 15 x (750 - 500) / 500
    assert breakdown == {
        "work_failures": 7.5,  # 30 x 1/4
        "span_errors": 10.0,  # 10% of spans
        "stale_claims": 10.0,  # 2 x 5
        "dead_agents": 5.0,  # 1 x 5
        "telemetry_fresh": 5.0,  # newest span 2 h old > 1 h
    }
    assert report["health_score"] == 55 and report["status"] == "critical"
    assert report["metrics"]["dead_agents"] == ["agent_1_cccccccc"]
    assert len(report["recommendations"]) == 6
    on_disk = json.loads((tmp_path / "system_health_report.json").read_text())
    assert on_disk["health_score"] == 55

    # Thresholds move the status, not the score.
    lenient = swarm(tmp_path, "health", "--json", HEALTH_CRITICAL_THRESHOLD="50")
    assert json.loads(lenient.stdout)["status"] == "fair"
    strict = swarm(tmp_path, "health", "--json", HEALTH_LATENCY_THRESHOLD_MS="2000")
    assert json.loads(strict.stdout)["issue_breakdown"]["latency"] == 0

    detailed = swarm(tmp_path, "health", "detailed")  # SwarmSH's form of --detailed
    assert "Health score: 55/100 (critical)" in detailed.stdout
    assert "stale_claims" in detailed.stdout and "→" in detailed.stdout
    bad = swarm(tmp_path, "health", HEALTH_CRITICAL_THRESHOLD="80")
    assert bad.returncode == 2 and "HEALTH_CRITICAL_THRESHOLD" in bad.stderr


def test_an_agent_registered_by_the_cli_is_not_dead_when_its_shell_exits(
    tmp_path: Path,
) -> None:
    # The README's tour from a script: the shell `swarm register` ran in has exited.
    script = f"{SWARM} register 100 active backend_development; true"  # no exec: sh stays
    proc = subprocess.run(
        ["sh", "-c", script],
        cwd=tmp_path,
        env=os.environ | {"SWARM_STORE": str(tmp_path / "store"), "AGENT_ID": "agent_alice"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    agent = json.loads(swarm(tmp_path, "agent-status", "agent_alice", "--json").stdout)
    assert agent["pid"] and not psutil.pid_exists(agent["pid"])  # the shell is gone
    report = json.loads(swarm(tmp_path, "health", "--json").stdout)
    assert report["issue_breakdown"]["dead_agents"] == 0
    assert report["metrics"]["dead_agents"] == []

    # An agent a supervisor started, whose process is gone, is dead, as is the item it
    # holds (even within the item's lease: nobody will finish it).
    store = FileStore(tmp_path / "store")
    store.register(Agent("agent_1_dddddddd", host=socket.gethostname(), pid=dead_pid()))
    store.add_work(WorkItem("work_1_00000001", "build", "x"))
    store.claim("agent_1_dddddddd")
    store.close()
    supervisor_state(tmp_path, {"agent_1_dddddddd": "builder-1"}, dead_pid())
    report = json.loads(swarm(tmp_path, "health", "--json").stdout)
    assert report["metrics"]["dead_agents"] == ["agent_1_dddddddd"]
    assert report["metrics"]["stale_claims"] == ["work_1_00000001"]


def test_health_of_a_quiet_empty_swarm_and_telemetry_off(tmp_path: Path) -> None:
    report = json.loads(swarm(tmp_path, "health", "--json").stdout)
    assert report["issue_breakdown"]["telemetry_fresh"] == 5  # no spans at all
    assert report["health_score"] == 95 and report["status"] == "excellent"
    off = json.loads(swarm(tmp_path, "health", "--json", TELEMETRY_ENABLED="false").stdout)
    assert off["health_score"] == 100
    assert not (tmp_path / "store").exists()  # observing creates no store


def test_stats_windows_percentiles_errors_and_tokens(tmp_path: Path) -> None:
    now = time.time_ns()
    spans = [span("swarm.claim", now - HOUR_NS, float(ms)) for ms in range(1, 101)]
    spans += [span("swarm.complete", now - 48 * HOUR_NS, error="Conflict") for _ in range(5)]
    spans += [
        span(
            "chat qwen3",
            now - 10 * 24 * HOUR_NS,
            gen_ai__request__model="qwen3",
            gen_ai__response__model="qwen3:8b",
            gen_ai__usage__input_tokens=20,
            gen_ai__usage__output_tokens=5,
        )
        for _ in range(7)
    ]
    path = tmp_path / "telemetry_spans.jsonl"
    write_spans(path, spans)
    with path.open("ab") as handle:
        handle.write(b'{"torn": \n')

    def stats(window: str) -> dict[str, Any]:
        proc = swarm(tmp_path, "telemetry", "stats", "--window", window, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    day = stats("24h")
    assert day["spans"] == 100 and set(day["operations"]) == {"swarm.claim"}
    claim = day["operations"]["swarm.claim"]
    assert claim["p50_ms"] == pytest.approx(50.5, rel=0.02)
    assert claim["p95_ms"] == pytest.approx(95, rel=0.02)
    assert claim["p99_ms"] == pytest.approx(99, rel=0.02)
    assert claim["max_ms"] == 100
    # Over the time the spans cover (from 100 ms before they end), at least a second.
    assert day["ops_per_s"] == 100
    assert day["bad_lines"] == 1

    week = stats("7d")
    assert week["spans"] == 105 and week["errors_by_type"] == {"Conflict": 5}
    assert week["operations"]["swarm.complete"]["success_rate"] == 0
    everything = stats("all")
    assert everything["spans"] == 112
    assert everything["tokens_by_model"] == {"qwen3:8b": {"calls": 7, "input": 140, "output": 35}}
    assert stats("90m")["spans"] == 100
    assert swarm(tmp_path, "telemetry", "stats", "--json", TELEMETRY_WINDOW="7d").returncode == 0
    bad = swarm(tmp_path, "telemetry", "stats", "--window", "3x")
    assert bad.returncode == 2
    assert bad.stderr.startswith("swarm: error: window '3x': use all or a number")
    human = swarm(tmp_path, "telemetry", "stats", "--window", "all")
    assert "swarm.claim" in human.stdout and "tokens qwen3:8b: 140 in, 35 out" in human.stdout


def test_stats_quantiles_stay_within_min_and_max_and_rates_cover_the_spans(
    tmp_path: Path,
) -> None:
    now = time.time_ns()
    # One span a second for a minute, an hour ago: 1 op/s, not 60 per day.
    spans = [span("execute command", now - HOUR_NS + i * 10**9, 20010.3) for i in range(60)]
    write_spans(tmp_path / "telemetry_spans.jsonl", spans)
    proc = swarm(tmp_path, "telemetry", "stats", "--window", "24h", "--json")
    data = json.loads(proc.stdout)
    op = data["operations"]["execute command"]
    # The sketch's bucket midpoint for 20010.3 ms is 20154.2 ms: above every value.
    assert op["p50_ms"] == op["p95_ms"] == op["p99_ms"] == op["max_ms"] == 20010.3
    covered = 59 + 20.0103  # from the first start to the last end, in seconds
    assert data["ops_per_s"] == pytest.approx(60 / covered, rel=0.001)
    assert op["ops_per_s"] == data["ops_per_s"]

    # Values just below and just above bucket bounds: their buckets' midpoints lie
    # below the smallest and above the largest.
    low, high = 1.02**100 * 0.9999, 1.02**300 * 1.0001
    sketch = Sketch()
    for value in (low, 1.02**200, high):
        sketch.add(value)
    assert [sketch.quantile(q) for q in (0, 0.5, 1)] == [
        low,
        pytest.approx(1.02**200, rel=0.01),
        high,
    ]


def test_sketch_quantiles_stay_within_two_percent() -> None:
    sketch = Sketch()
    values = [0.01 * (1.001**i) for i in range(20000)]
    for value in values:
        sketch.add(value)
    for q in (0.5, 0.9, 0.99):
        exact = values[int(q * (len(values) - 1))]
        assert sketch.quantile(q) == pytest.approx(exact, rel=0.02)
    buckets = len(sketch.buckets)  # set by the range (9 decades here), not the count
    for value in values:
        sketch.add(value)
    assert len(sketch.buckets) == buckets and sketch.count == 40000


def test_metrics_in_three_formats(tmp_path: Path) -> None:
    crafted_swarm(tmp_path)
    text = swarm(tmp_path, "metrics").stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    items = {s.labels["status"]: s.value for s in families["swarm_work_items"].samples}
    assert items["completed"] == 3 and items["dead"] == 1 and items["claimed"] == 2
    assert items["pending"] == 0
    claims = families["swarm_claim_duration_seconds"].samples
    count = next(s.value for s in claims if s.name.endswith("_count"))
    assert count == 100
    le_half_second = next(s.value for s in claims if s.labels.get("le") == "0.5")
    assert le_half_second == 90
    ops = families["swarm_operations"].samples
    assert any(
        s.labels == {"operation": "swarm.claim", "status": "error"} and s.value == 10 for s in ops
    )
    assert families["swarm_health_score"].samples[0].value == 55

    as_json = json.loads(swarm(tmp_path, "metrics", "--format", "json").stdout)
    assert {"labels": {"status": "dead"}, "value": 1.0} in as_json["swarm_work_items"]
    rows = swarm(tmp_path, "metrics", "-f", "csv").stdout.splitlines()
    assert rows[0] == "metric,labels,value" and "swarm_work_items,status=dead,1" in rows
    assert swarm(tmp_path, "metrics", "csv").stdout.splitlines() == rows  # SwarmSH's form
    bad = swarm(tmp_path, "metrics", "--format", "xml")
    assert bad.returncode == 2 and "prometheus, json, csv" in bad.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outside_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_supervisor_serves_metrics_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        '[[agents]]\nname = "sleepers"\ncount = 2\n',
        '[[work]]\nwork_type = "nap"\ndescription = "nap"\ncount = 6\n'
        'payload = { argv = ["sleep", "30"] }\n',
    )
    config.write_text(config.read_text() + f"\n[supervisor]\nmetrics_port = {port}\n")
    old_errors = [span("swarm.claim", time.time_ns(), error="Conflict") for _ in range(50)]
    write_spans(tmp_path / "telemetry_spans.jsonl", old_errors)  # from before this start
    up = swarm(tmp_path, "up", "--detach")
    assert up.returncode == 0, up.stderr
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> dict[str, Any] | None:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            running = [
                s.value
                for s in families["swarm_agent_processes"].samples
                if s.labels["state"] == "running"
            ]
            items = {s.labels["status"]: s.value for s in families["swarm_work_items"].samples}
            if running == [2.0] and items["in_progress"] == 2:
                return families
            return None

        families = wait_for(scrape, timeout=30, every=0.2)
        assert families["swarm_claim_duration_seconds"].samples
        claim_errors = [
            s.value
            for s in families["swarm_operations"].samples
            if s.labels == {"operation": "swarm.claim", "status": "error"}
        ]
        assert claim_errors in ([], [0.0])  # counters start with the supervisor
        assert 0 <= families["swarm_health_score"].samples[0].value <= 100
        address = outside_address()
        if address is not None:
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
        for path in ("/", "/metric", "/metrics/x", "/healthz"):  # only /metrics is served
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert answer.value.code == 404
            answer.value.close()
        status = swarm(tmp_path, "status")
        assert f"metrics: http://127.0.0.1:{port}/metrics" in status.stdout
        clash = swarm(tmp_path, "up")
        assert clash.returncode == 3  # the supervisor lock or the port: never a traceback
    finally:
        assert swarm(tmp_path, "down", "--force").returncode == 0


# -- diagrams ------------------------------------------------------------------------------

MERMAID_LINE = {
    "stateDiagram-v2": re.compile(
        r'^    (state "[^"]*" as \w+|(\[\*\]|\w+) --> (\[\*\]|\w+)(: [^"]+)?)$'
    ),
    "flowchart LR": re.compile(
        r'^ *(subgraph \w+\["[^"]*"\]|end|\w+\["[^"]*"\]|\w+\(\["[^"]*"\]\)|\w+ -->\|\w+\| \w+)$'
    ),
    "pie showData": re.compile(r'^    (title [^"]+|"[^"]+" : \d+)$'),
    "sequenceDiagram": re.compile(
        r"^    (participant \w+ as [^\s]+|\w+(->>|-x)\w+: [^;#]+|Note over \w+: .+)$"
    ),
}


def assert_mermaid(text: str) -> list[str]:
    header, *lines = text.rstrip("\n").split("\n")
    grammar = MERMAID_LINE[header]
    for line in lines:
        assert grammar.match(line), f"not valid {header}: {line!r}"
    return lines


def test_diagrams_of_a_crafted_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    store.register(Agent("agent_1_aaaaaaaa", specialization="backend", team="core"))
    store.register(Agent("agent_2_bbbbbbbb", specialization="docs"))
    store.add_work(WorkItem("work_1_00000001", "build", 'say "hi"; # now'))
    store.add_work(WorkItem("work_1_00000002", "test", "run tests"))
    store.add_work(WorkItem("work_1_00000003", "docs", "write"))
    store.claim("agent_1_aaaaaaaa")
    store.progress("work_1_00000001", 40, agent_id="agent_1_aaaaaaaa")
    store.claim("agent_2_bbbbbbbb")
    store.close()
    supervisor_state(tmp_path, {"agent_1_aaaaaaaa": "builder-1"}, dead_pid())

    flow = assert_mermaid(swarm(tmp_path, "diagram", "flow").stdout)
    assert '    state "pending (1)" as pending' in flow
    assert '    state "in_progress (1)" as in_progress' in flow
    assert "    pending --> claimed: claim" in flow

    agents = assert_mermaid(swarm(tmp_path, "diagram", "agents").stdout)
    assert '    subgraph team_core["core"]' in agents
    assert '        agent_1_aaaaaaaa["builder-1<br/>backend · active"]' in agents  # its name
    assert '        agent_2_bbbbbbbb["agent_2_bbbbbbbb<br/>docs · active"]' in agents
    assert "    agent_1_aaaaaaaa -->|holds| work_1_00000001" in agents
    assert "    agent_2_bbbbbbbb -->|holds| work_1_00000002" in agents
    assert '    work_1_00000001(["build: work_1_00000001<br/>in_progress 40%"])' in agents

    work = assert_mermaid(swarm(tmp_path, "diagram", "work").stdout)
    assert '    "pending" : 1' in work and '    "claimed" : 1' in work

    now = time.time_ns()
    spans = [
        span(
            "swarm.claim",
            now - 2000,
            swarm__agent__id="agent_1_aaaaaaaa",
            swarm__work__id="work_1_00000001",
        ),
        span("swarm.complete", now - 1000, error="Conflict", swarm__work__id="work_1_00000001"),
    ]
    for one in spans:  # both by the agent process the supervisor calls builder-1
        one["resource"]["swarm.agent.id"] = "agent_1_aaaaaaaa"
    write_spans(tmp_path / "telemetry_spans.jsonl", spans)
    out = tmp_path / "timeline.mmd"
    proc = swarm(tmp_path, "diagram", "timeline", "--output", str(out))
    assert proc.returncode == 0 and str(out) in proc.stdout
    timeline = assert_mermaid(out.read_text())
    assert "    participant a1 as builder-1" in timeline
    assert "    a1->>store: claim work_1_00000001 (1.0 ms)" in timeline
    assert "    a1-xstore: complete work_1_00000001 (1.0 ms)" in timeline
    assert swarm(tmp_path, "diagram", "gantt").returncode == 2


# -- archive -------------------------------------------------------------------------------


def test_archive_while_eight_processes_write_keeps_every_span(tmp_path: Path) -> None:
    spans_file = tmp_path / "telemetry_spans.jsonl"
    # The writers go on until the archive command has rotated the file twice under
    # them, however long that takes on a busy machine (500 spans each at least, at
    # most 400 a second: the longer the archive command takes, the more it compresses).
    writers = workers.start_span_writers(str(spans_file), 8, 500, pause_s=0.25, until_stopped=True)
    procs = writers.procs
    rotations = 0
    wait_for(spans_file.exists, timeout=120)  # they have started writing

    def rotated_twice() -> bool:
        nonlocal rotations
        result = swarm(tmp_path, "telemetry", "archive", "--json", "--force")
        assert result.returncode == 0, result.stderr
        rotations += json.loads(result.stdout)["rotated"] is not None
        return rotations >= 2

    wait_for(rotated_twice, timeout=180)
    assert all(proc.is_alive() for proc in procs)  # both rotations ran under writers
    writers.stop.set()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    written = {proc.pid: writers.written[n] for n, proc in enumerate(procs)}
    assert min(written.values()) >= 500
    archives = sorted((tmp_path / "telemetry_archive").glob("*.jsonl.gz"))
    assert len(archives) == rotations
    assert not list((tmp_path / "telemetry_archive").glob("*.jsonl"))  # all compressed
    lines = []
    for archive in archives:
        lines += gzip.decompress(archive.read_bytes()).splitlines()
    if spans_file.exists():
        lines += spans_file.read_bytes().splitlines()
    spans = [json.loads(line) for line in lines]  # none torn
    total = sum(written.values())
    assert len(spans) == total
    assert {(s["attributes"]["test.pid"], s["attributes"]["test.index"]) for s in spans} == {
        (pid, index) for pid, count in written.items() for index in range(count)
    }
    all_stats = swarm(tmp_path, "telemetry", "stats", "-w", "all", "--archives", "--json")
    assert json.loads(all_stats.stdout)["spans"] == total


def test_archive_limits_and_retention(tmp_path: Path) -> None:
    spans_file = tmp_path / "telemetry_spans.jsonl"
    now = time.time_ns()
    write_spans(spans_file, [span("swarm.claim", now) for _ in range(10)])
    under = json.loads(swarm(tmp_path, "telemetry", "archive", "--json").stdout)
    assert under["rotated"] is None and spans_file.exists()
    by_lines = swarm(tmp_path, "telemetry", "archive", "--json", TELEMETRY_ARCHIVE_LINES="10")
    result = json.loads(by_lines.stdout)
    assert result["lines"] == 10 and "TELEMETRY_ARCHIVE_LINES=10" in result["reason"]
    assert not spans_file.exists()

    folder = tmp_path / "telemetry_archive"
    old = folder / "telemetry_spans-20200101T000000-1.jsonl.gz"
    old.write_bytes(gzip.compress(b""))
    forty_days = time.time() - 40 * 86400
    os.utime(old, (forty_days, forty_days))
    leftover = folder / "telemetry_spans-20260101T000000-2.jsonl"  # a crash before gzip
    leftover.write_bytes(b'{"end_unix_nano": 1}\n')
    pruned = json.loads(swarm(tmp_path, "telemetry", "archive", "--json").stdout)
    assert pruned["deleted"] == [str(old)]
    assert pruned["compressed"] == [str(leftover) + ".gz"]
    assert gzip.decompress(Path(str(leftover) + ".gz").read_bytes()) == b'{"end_unix_nano": 1}\n'
    kept = json.loads(
        swarm(tmp_path, "telemetry", "archive", "--json", TELEMETRY_RETENTION_DAYS="1").stdout
    )
    assert kept["deleted"] == []


# -- monitor and validate --------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_monitor_once_and_live_quits_on_q_or_ctrl_c(tmp_path: Path, key: bytes) -> None:
    crafted_swarm(tmp_path)
    once = swarm(tmp_path, "monitor", "--once", "--window", "7d")
    assert once.returncode == 0, once.stderr
    assert "health 55/100 critical" in once.stdout and "swarm.claim" in once.stdout
    assert "builder-1" in once.stdout  # the supervisor's name for agent_1_cccccccc
    piped = swarm(tmp_path, "monitor", "--window", "7d")  # not a terminal: one frame
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.count("swarm monitor") == 1 and "health 55/100" in piped.stdout

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    env |= {"SWARM_STORE": str(tmp_path / "store"), "COLUMNS": "120", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: swarm monitor on a terminal
        os.chdir(tmp_path)
        os.execve(SWARM, [SWARM, "monitor"], env)
    poller = select.poll()  # not select(): the test process may hold fds above 1024
    poller.register(fd, select.POLLIN)
    output = b""
    deadline = time.monotonic() + 30
    while b"swarm monitor" not in output and time.monotonic() < deadline:
        if poller.poll(500):
            output += os.read(fd, 65536)
    assert b"swarm monitor" in output
    assert not termios.tcgetattr(fd)[3] & termios.ICANON  # single keys, no Enter
    os.write(fd, key)  # q, or Ctrl-C: read as a key (the monitor turns ISIG off)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            raise AssertionError("swarm monitor did not quit on q")
        if poller.poll(100):
            try:
                os.read(fd, 65536)  # keep the terminal drained, or the monitor blocks
            except OSError:
                pass
    assert os.waitstatus_to_exitcode(status) == 0
    assert termios.tcgetattr(fd)[3] & termios.ICANON  # the terminal is given back
    os.close(fd)


def test_validate_file_and_postgres_stores(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    proc = swarm(tmp_path, "validate", "--json")
    assert proc.returncode == 0, proc.stdout
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert all(c["ok"] for c in checks.values())
    assert checks["store round trip"]["detail"].startswith("file store: add, claim, complete")

    (tmp_path / "telemetry_spans.jsonl").write_bytes(b"not json\n")
    # In the test's own schema: the database is shared with whatever else runs there.
    (tmp_path / "pg.toml").write_text(
        f'[store]\nbackend = "postgres"\ndsn = "{pg_dsn}"\nschema = "{pg_schema}"\n'
    )
    pg = swarm(tmp_path, "-c", str(tmp_path / "pg.toml"), "validate", SWARM_STORE="")
    assert pg.returncode == 0, pg.stdout
    assert "PostgreSQL store: add, claim, complete" in pg.stdout
    assert "1 unparsable line(s) skipped" in pg.stdout
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'swarmsh_validate_%'"
        ).fetchone()
    assert leftovers == (0,)

    down = swarm(tmp_path, "--store", "postgresql://postgres@127.0.0.1:9/none", "validate")
    assert down.returncode == 1
    assert "FAIL store round trip" in down.stdout and "Traceback" not in down.stdout + down.stderr


def test_archive_on_a_full_disk_loses_nothing(tmp_path: Path) -> None:
    spans_file = tmp_path / "telemetry_spans.jsonl"
    now = time.time_ns()
    write_spans(
        spans_file, [span("swarm.claim", now, filler=os.urandom(1000).hex()) for _ in range(200)]
    )
    original = spans_file.read_bytes()

    def limited() -> None:  # writes past 64 KB fail, as on a full disk
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    proc = subprocess.run(
        [SWARM, "telemetry", "archive", "--force"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limited,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("swarm: error: cannot archive spans: File too large")
    folder = tmp_path / "telemetry_archive"
    assert not list(folder.glob("*.partial"))
    (plain,) = folder.glob("*.jsonl")
    assert plain.read_bytes() == original

    retry = json.loads(swarm(tmp_path, "telemetry", "archive", "--json").stdout)
    (archived,) = retry["compressed"]
    assert gzip.decompress(Path(archived).read_bytes()) == original


def test_an_unreadable_span_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "telemetry_spans.jsonl").mkdir()
    proc = swarm(tmp_path, "telemetry", "stats")
    assert proc.returncode == 1
    assert proc.stderr == f"swarm: error: Is a directory ({tmp_path / 'telemetry_spans.jsonl'})\n"


def test_items_waiting_for_their_parents_are_not_stale_claims(tmp_path: Path) -> None:
    """An item blocked on its parents has no agent: it is waiting, not a claim whose
    holder is gone (which costs health points and advice to check the supervisor)."""
    assert swarm(tmp_path, "add", "t", "parent", "--key", "p").returncode == 0
    for n in range(3):
        assert swarm(tmp_path, "add", "t", f"child {n}", "--after", "p").returncode == 0
    held = swarm(tmp_path, "claim", "t", "held by a gone agent", "-q", AGENT_ID="agent_gone")
    assert held.returncode == 0
    report = json.loads(swarm(tmp_path, "health", "--json").stdout)
    stale = [d for d in report["deductions"] if d["check"] == "stale_claims"]
    assert len(stale) == 1 and "1 held item" in stale[0]["detail"], stale
