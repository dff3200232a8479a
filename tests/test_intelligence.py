"""LLM-assisted claiming through the official ollama and anthropic clients against the
test's fake servers: a valid choice, invalid JSON, a timeout, an id that does not
exist, an item taken meanwhile, the cache; and the store's claim of a chosen id."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Conflict, InvalidArgument, NotFound
from orchestrator.intelligence.ask import ask
from orchestrator.intelligence.claiming import Choice, intelligent_claim
from orchestrator.intelligence.settings import IntelligenceSettings
from orchestrator.records import ANY, WorkItem, WorkStatus
from orchestrator.store.file import FileStore
from orchestrator.telemetry import tracing
from orchestrator.telemetry.settings import TelemetrySettings

from .conftest import SWARM
from .fake_llm import FakeLLM, Reply, claude_ok, ollama_ok


def test_reprioritize_moves_an_item_in_the_queue(store: Any) -> None:
    store.add_work(WorkItem("a", "t", "d", priority="high"))
    store.add_work(WorkItem("b", "t", "d", priority="medium"))
    store.add_work(WorkItem("c", "t", "d", priority="low"))
    assert store.reprioritize("c", "critical").priority == "critical"
    assert store.reprioritize("a", "low").priority == "low"
    assert [store.claim(f"x{n}").work_item_id for n in range(3)] == ["c", "b", "a"]
    store.complete("c", "success")
    with pytest.raises(Conflict):
        store.reprioritize("c", "low")
    with pytest.raises(NotFound):
        store.reprioritize("nope", "low")
    with pytest.raises(InvalidArgument):
        store.reprioritize("a", "urgent")


def test_claim_id_takes_that_pending_item_or_none(store: Any) -> None:
    for n, priority in enumerate(("critical", "low")):
        store.add_work(WorkItem(f"w{n}", "t", "d", priority=priority))
    item = store.claim_id("a1", "w1")
    assert item.work_item_id == "w1" and item.status == WorkStatus.CLAIMED
    assert item.agent_id == "a1" and item.lease_expires_at is not None
    assert store.claim_id("a2", "w1") is None  # taken: the caller tries its next choice
    with pytest.raises(NotFound):
        store.claim_id("a2", "nope")
    assert store.claim("a2").work_item_id == "w0"  # the queue skips the chosen item
    assert store.claim("a3") is None
    store.complete("w1", "success", agent_id="a1")


@pytest.fixture
def spans(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "spans.jsonl"
    tracing.configure("agent", TelemetrySettings(spans_file=str(path)), short_lived=True)
    yield path
    tracing.shutdown()


def claim_span(path: Path) -> dict[str, Any]:
    tracing.flush()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    (span,) = [r for r in rows if r["name"] == "swarmsh.intelligence.claim"]
    return dict(span["attributes"])


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[FileStore]:
    store = FileStore(tmp_path / "store")
    store.add_work(WorkItem("w_high", "bug_fix", "fix the login crash", priority="high"))
    store.add_work(WorkItem("w_docs", "documentation", "write the API guide", priority="low"))
    store.add_work(WorkItem("w_med", "feature", "add caching", priority="medium"))
    yield store
    store.close()


def settings(tmp_path: Path, backend: str, url: str, **changes: Any) -> IntelligenceSettings:
    base = IntelligenceSettings(
        backend=backend,
        model="qwen3" if backend == "ollama" else "claude-test",
        host=url,
        timeout_s=5.0,
        top_k=5,
        cache_ttl_s=0.0,
        cache_dir=str(tmp_path / "cache"),
        max_tokens=256,
    )
    return replace(base, **changes)


def choose(store: FileStore, config: IntelligenceSettings) -> WorkItem | None:
    return intelligent_claim(
        store, "agent_writer", ANY, config, role="writer", specialization="documentation"
    )


def test_ollama_choice_is_claimed(tmp_path: Path, queue: FileStore, spans: Path) -> None:
    answer = json.dumps({"work_item_id": "w_docs", "reason": "a writer writes docs"})
    with FakeLLM() as fake:
        fake.replies.append(ollama_ok(answer))
        item = choose(queue, settings(tmp_path, "ollama", fake.url))
    assert item is not None and item.work_item_id == "w_docs"
    assert queue.get("w_docs").agent_id == "agent_writer"
    (request,) = fake.requests
    assert request["path"] == "/api/chat"
    assert request["json"]["format"]["properties"]["work_item_id"]  # the pydantic schema
    asked = request["json"]["messages"][1]["content"]
    assert "documentation" in asked and "w_high" in asked and "w_med" in asked
    span = claim_span(spans)
    assert span["swarm.intelligence.chosen"] == "w_docs"
    assert "swarm.intelligence.fallback" not in span


def test_claude_choice_is_claimed(
    tmp_path: Path, queue: FileStore, spans: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    answer = '```json\n{"work_item_id": "w_med", "reason": "closest fit"}\n```'
    with FakeLLM() as fake:
        fake.replies.append(claude_ok(answer))
        item = choose(queue, settings(tmp_path, "claude", fake.url))
    assert item is not None and item.work_item_id == "w_med"
    assert fake.requests[0]["path"] == "/v1/messages"
    assert "JSON schema" in fake.requests[0]["json"]["system"]
    assert "sk-test-secret" not in spans.read_text()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (ollama_ok("I would pick the docs one"), "invalid answer"),
        (ollama_ok(json.dumps({"reason": "no id"})), "invalid answer: work_item_id"),
        (ollama_ok(json.dumps({"work_item_id": "w_ghost"})), "'w_ghost', not a candidate"),
        (Reply(500, {"error": "model crashed"}), "ollama unavailable"),
    ],
)
def test_a_bad_answer_falls_back_to_priority_order(
    tmp_path: Path, queue: FileStore, spans: Path, reply: Reply, reason: str
) -> None:
    with FakeLLM() as fake:
        fake.replies.append(reply)
        item = choose(queue, settings(tmp_path, "ollama", fake.url))
    assert item is not None and item.work_item_id == "w_high"  # what the plain claim gives
    assert reason in claim_span(spans)["swarm.intelligence.fallback"]


def test_a_late_answer_falls_back(tmp_path: Path, queue: FileStore, spans: Path) -> None:
    with FakeLLM() as fake:
        fake.replies.append(Reply(200, ollama_ok('{"work_item_id": "w_docs"}').body, delay_s=3))
        item = choose(queue, settings(tmp_path, "ollama", fake.url, timeout_s=0.5))
    assert item is not None and item.work_item_id == "w_high"
    assert claim_span(spans)["swarm.intelligence.fallback"].startswith("timeout")


def test_no_server_and_no_key_fall_back(
    tmp_path: Path, queue: FileStore, spans: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    item = choose(queue, settings(tmp_path, "claude", "http://127.0.0.1:9"))
    assert item is not None and item.work_item_id == "w_high"
    assert "ANTHROPIC_API_KEY" in claim_span(spans)["swarm.intelligence.fallback"]


def test_the_same_fallback_again_is_logged_once_as_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent asks at every claim: a key that stays missing warns once, not per claim."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr("orchestrator.intelligence.ask._last_fallback", "")  # this process's
    config = settings(tmp_path, "claude", "http://127.0.0.1:9")
    caplog.set_level(logging.DEBUG, logger="orchestrator.intelligence.ask")
    for _ in range(3):
        assert ask(config, "s", "p", Choice, use_cache=False).value is None
    levels = [r.levelno for r in caplog.records if "plain behaviour" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_an_item_taken_meanwhile_gives_the_next_choice(
    tmp_path: Path, queue: FileStore, spans: Path
) -> None:
    other = FileStore(queue.path)

    def take_docs() -> None:  # another agent claims the pick while the model thinks
        assert other.claim_id("agent_other", "w_docs") is not None

    with FakeLLM() as fake:
        fake.replies.append(
            Reply(200, ollama_ok('{"work_item_id": "w_docs"}').body, before=take_docs)
        )
        item = choose(queue, settings(tmp_path, "ollama", fake.url))
    other.close()
    assert item is not None and item.work_item_id == "w_high"
    assert queue.get("w_docs").agent_id == "agent_other"
    span = claim_span(spans)
    assert span["swarm.intelligence.chosen"] == "w_docs"
    assert span["swarm.intelligence.taken_meanwhile"] is True


def test_answers_are_cached_for_cache_ttl(tmp_path: Path, spans: Path) -> None:
    config = settings(tmp_path, "ollama", "", cache_ttl_s=300)
    stores = []
    with FakeLLM() as fake:
        config = replace(config, host=fake.url)
        fake.replies.append(ollama_ok('{"work_item_id": "w_b"}'))
        for n in range(2):  # the same question twice: the same candidates, the same agent
            store = FileStore(tmp_path / f"store{n}")
            store.add_work(WorkItem("w_a", "t", "a", priority="high"))
            store.add_work(WorkItem("w_b", "t", "b", priority="low"))
            stores.append(store)
            assert choose(store, config).work_item_id == "w_b"  # type: ignore[union-attr]
    assert len(fake.requests) == 1
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for store in stores:
        store.close()


def test_swarm_claim_next_intelligent(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    with FakeLLM() as fake:
        (tmp_path / "swarm.toml").write_text(
            f'[intelligence]\nbackend = "ollama"\nhost = "{fake.url}"\ncache_ttl_min = 0\n'
        )

        def swarm(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [SWARM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )

        swarm("add", "bug_fix", "crash", "high")
        docs = swarm("add", "documentation", "guide", "low", "-q").stdout.strip()
        swarm("register", "100", "active", "documentation", "--agent-id", "agent_w")
        fake.replies.append(ollama_ok(json.dumps({"work_item_id": docs})))
        done = swarm("claim", "--next", "--intelligent", "--agent-id", "agent_w", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["work_item_id"] == docs
        assert (
            '"specialization": "documentation"'
            in fake.requests[0]["json"]["messages"][1]["content"]
        )
        fake.replies.append(ollama_ok("not json"))
        plain = swarm("claim", "--next", "--intelligent", "--agent-id", "agent_w", "--json")
        assert plain.returncode == 0 and json.loads(plain.stdout)["priority"] == "high"


def test_swarm_analyze_writes_swarmsh_files_and_falls_back(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    with FakeLLM() as fake:
        (tmp_path / "swarm.toml").write_text(
            f'[intelligence]\nbackend = "ollama"\nhost = "{fake.url}"\ncache_ttl_min = 0\n'
        )

        def swarm(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [SWARM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )

        item = swarm("add", "bug_fix", "data loss on save", "low", "-q").stdout.strip()
        change = {"work_item_id": item, "current": "low", "suggested": "critical"}
        fake.replies.append(
            ollama_ok(json.dumps({"summary": "one misfiled bug", "changes": [change]}))
        )
        done = swarm("analyze", "priorities", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads((tmp_path / "claude_priority_analysis.json").read_text())
        assert report == json.loads(done.stdout)
        assert report["analysis"]["changes"][0]["suggested"] == "critical"
        assert report["input"]["pending"] == 1 and report["fallback"] is None
        assert report["applied"] == []  # suggestions only without --apply
        assert json.loads(swarm("list-work", "--json").stdout)[0]["priority"] == "low"
        stale = {"work_item_id": item, "current": "high", "suggested": "medium"}
        fake.replies.append(ollama_ok(json.dumps({"summary": "s", "changes": [change, stale]})))
        done = swarm("analyze", "priorities", "--apply", "--json")
        assert done.returncode == 0, done.stderr
        assert [c["suggested"] for c in json.loads(done.stdout)["applied"]] == ["critical"]
        assert json.loads(swarm("list-work", "--json").stdout)[0]["priority"] == "critical"

        health = {"summary": "fine", "score": 250, "status": "excellent", "issues": []}
        fake.replies.append(ollama_ok(json.dumps(health)))  # a score out of range
        done = swarm("analyze", "health")
        assert done.returncode == 0 and "no analysis (invalid answer: score" in done.stdout
        report = json.loads((tmp_path / "claude_health_analysis.json").read_text())
        assert report["analysis"] is None and report["input"]["health"]["health_score"] >= 0

        for kind, name in (("assignments", "optimization_results"), ("team", "team_analysis")):
            fake.replies.append(Reply(503, {"error": "overloaded"}))
            done = swarm("analyze", kind)
            assert done.returncode == 0 and "unavailable" in done.stdout
            assert (tmp_path / f"claude_{name}.json").exists()
        bad = swarm("analyze", "mood")
        assert bad.returncode == 2 and "use one of priorities" in bad.stderr
    spans = Path(env["TELEMETRY_SPANS_FILE"]).read_text().splitlines()
    analyses = [json.loads(s) for s in spans if "swarmsh.intelligence.analyze" in s]
    assert len(analyses) == 5
    assert all("swarm.intelligence.fallback" not in s["attributes"] for s in analyses[:2])
    assert all("swarm.intelligence.fallback" in s["attributes"] for s in analyses[2:])
    assert sum('"swarm.reprioritize"' in s for s in spans) == 1


def test_the_models_calls_count_against_limits_and_the_budget(tmp_path: Path) -> None:
    """An intelligent claim is a metered call: it goes through [[limits]], lands in the
    ledger as group "intelligence", spends the swarm's budget, and once the budget is
    gone the claim falls back to priority order without asking the model."""
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    with FakeLLM() as fake:
        (tmp_path / "swarm.toml").write_text(
            f'[intelligence]\nbackend = "ollama"\nhost = "{fake.url}"\ncache_ttl_min = 0\n'
            '[[limits]]\nname = "local"\nbackend = "ollama"\nrequests_per_minute = 1\n'
            "[prices.qwen3]\ninput_per_mtok = 100000.0\noutput_per_mtok = 0.0\n"
            "[budget]\nmax_usd = 1.0\n"
        )

        def swarm(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [SWARM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )

        swarm("add", "bug_fix", "crash", "high")
        swarm("add", "bug_fix", "leak", "high")
        docs = swarm("add", "documentation", "guide", "low", "-q").stdout.strip()
        fake.replies.append(ollama_ok(json.dumps({"work_item_id": docs})))
        done = swarm("claim", "--next", "--intelligent", "--agent-id", "agent_w", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["work_item_id"] == docs
        cost = json.loads(swarm("cost", "--by", "group", "--json").stdout)
        (row,) = cost["rows"]
        # ollama_ok reports 21 prompt tokens: 21 * 100,000 US$ per million = 2.1 US$
        assert (row["group"], row["calls"], row["input_tokens"]) == ("intelligence", 1, 21)
        assert row["cost_usd"] == pytest.approx(2.1)
        limits = json.loads(swarm("limits", "--json").stdout)
        assert limits["limits"][0]["figures"]["requests"]["used"] == pytest.approx(1, abs=0.1)
        assert limits["budgets"][0]["exhausted"] is True
        asked = len(fake.requests)
        plain = swarm("claim", "--next", "--intelligent", "--agent-id", "agent_w", "--json")
        assert plain.returncode == 0 and json.loads(plain.stdout)["priority"] == "high"
        assert len(fake.requests) == asked  # the exhausted budget kept the model out
    spans = Path(env["TELEMETRY_SPANS_FILE"]).read_text().splitlines()
    claims = [json.loads(s) for s in spans if "swarmsh.intelligence.claim" in s]
    assert "budget" in claims[-1]["attributes"]["swarm.intelligence.fallback"]


def test_an_intelligent_group_in_swarm_up_claims_the_models_pick(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    env["TELEMETRY_SPANS_FILE"] = str(tmp_path / "spans.jsonl")
    with FakeLLM() as fake:
        (tmp_path / "swarm.toml").write_text(
            f'[intelligence]\nbackend = "ollama"\nhost = "{fake.url}"\ncache_ttl_min = 0\n\n'
            '[[agents]]\nname = "writer"\nspecialization = "documentation"\n'
            'claim = "intelligent"\n\n'
            '[[work]]\nwork_type = "bug"\ndescription = "crash"\npriority = "high"\n'
            'key = "bug"\npayload = { argv = ["true"] }\n\n'
            '[[work]]\nwork_type = "docs"\ndescription = "guide"\npriority = "low"\n'
            'key = "docs"\npayload = { argv = ["true"] }\n'
        )
        picked: list[str] = []

        def pick_docs() -> dict[str, Any]:
            """The low-priority docs item, by its key: its id exists once swarm up ran."""
            store = FileStore(tmp_path / "agent_coordination")
            picked.append(next(i.work_item_id for i in store.list_work() if i.key == "docs"))
            store.close()
            return dict(ollama_ok(json.dumps({"work_item_id": picked[0]})).body)

        fake.replies.append(Reply(200, pick_docs))
        done = subprocess.run(
            [SWARM, "up", "--until-drained"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    spans = [
        json.loads(line)["attributes"]
        for line in (tmp_path / "spans.jsonl").read_text().splitlines()
        if '"swarmsh.intelligence.claim"' in line
    ]
    chosen = [s for s in spans if "swarm.intelligence.chosen" in s]
    assert chosen[0]["swarm.intelligence.chosen"] == picked[0]
    assert chosen[0]["swarm.work.id"] == picked[0]
    assert spans[-1]["swarm.intelligence.fallback"] == "one candidate: nothing to choose"
