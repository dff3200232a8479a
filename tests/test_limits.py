"""Swarm-wide limits, the cost ledger and budgets, through real `swarm up` processes and
the official anthropic/ollama clients against a rate-limited fake provider."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.config import load_config
from orchestrator.errors import ConfigError

from .conftest import SWARM, StoreFactory, wait_for
from .fake_llm import Bucket, FakeLLM

KEY = "sk-test-not-a-real-key"


def _store_toml(backend: str, root: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")
        return f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\nlease_s = 20\n'
    return f'[store]\npath = "{root / "store"}"\nlease_s = 20\n'


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    env["ANTHROPIC_API_KEY"] = KEY
    env["SWARM_NO_LIVE"] = "1"
    return env


def _results(*roots: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for root in roots:
        for path in (root / "real_work_results").glob("*.json"):
            found[path.stem] = json.loads(path.read_text())
    return found


def _swarm(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWARM, *args], cwd=root, env=_env(), capture_output=True, text=True, timeout=timeout
    )


# -- the store's part: one atomic step over shared documents, on both backends --------

INCREMENTS = 40


def _bump(target: str, schema: str, n: int) -> None:
    """Child process: ``n`` atomic increments, each with a ledger entry."""
    from orchestrator.store import StoreOptions, open_backend

    store = open_backend(target, StoreOptions(schema=schema))

    def change(docs: dict[str, dict[str, Any]], now: float) -> None:
        docs["counter"]["n"] = int(docs["counter"].get("n", 0)) + 1

    for _ in range(n):
        store.update_shared(["counter"], change, ledger={"cost_usd": 0.5})
    store.close()


def test_shared_documents_are_one_state_for_every_process(
    backend: str, make_store: StoreFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = make_store()
    if backend == "postgres":
        target, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    else:
        target, schema = str(tmp_path / "store"), "swarmsh"
    code = f"from tests.test_limits import _bump; _bump({target!r}, {schema!r}, {INCREMENTS})"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent)
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    seen = store.update_shared(["counter"], lambda docs, now: dict(docs["counter"]))
    assert seen == {"n": 4 * INCREMENTS}
    entries = store.ledger()
    assert len(entries) == 4 * INCREMENTS
    assert all(e["cost_usd"] == 0.5 and e["ts"] > 0 for e in entries)
    assert store.ledger(since=entries[-1]["ts"] + 1) == []


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[limits]]\nname = "a"\nbackend = "claude"\n', "sets no figure"),
        (
            '[[limits]]\nname = "a"\nbackend = "claude"\nrequests_per_minute = -1\n',
            "greater than 0",
        ),
        ('[[limits]]\nname = "a"\nbackend = "gpt"\nmax_concurrent = 1\n', "must be one of"),
        (
            '[[limits]]\nname = "a"\nbackend = "claude"\nmax_concurrent = 1\n'
            '[[limits]]\nname = "a"\nbackend = "ollama"\nmax_concurrent = 1\n',
            "used twice",
        ),
        ('[prices."m"]\ninput_per_mtok = "x"\n', "valid number"),
        ("[budget]\nmax_usd = 0\n", "greater than 0"),
        ("[budget]\nmax_dollars = 5\n", "unknown key"),
    ],
)
def test_bad_limits_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "swarm.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    run = _swarm(tmp_path, "limits")
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and message in run.stderr


# -- whole swarms against a rate-limited provider ---------------------------------------


def _group(client: str, url: str, count: int, **extra: Any) -> str:
    lines = [
        "[[agents]]",
        'name = "llm"',
        f"count = {count}",
        f'backend = "{client}"',
        f'model = "{"claude-test" if client == "claude" else "qwen3"}"',
        f'host = "{url}"',
        "max_tokens = 10",
        "retries = 0",  # a 429 that reached the item would fail it at once
        "timeout_s = 30",
        "stop_timeout_s = 5",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def _work(count: int) -> str:
    return f'[[work]]\nwork_type = "ask"\ndescription = "a question"\ncount = {count}\n'


def _limit(client: str, **figures: Any) -> str:
    lines = ["[[limits]]", 'name = "provider"', f'backend = "{client}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in figures.items()]
    return "\n".join(lines) + "\n"


def _write(root: Path, *parts: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "swarm.toml").write_text("\n".join(parts))
    return root


def test_three_groups_of_four_agents_never_exceed_the_bucket(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The provider allows 6 calls at once, then 2 a second; [[limits]] the same rate with
    # a burst of 3: a call reaches the provider a moment after its admission, and a
    # bucket that is full meanwhile gains nothing (1.5 s of slack on a busy machine).
    # Twelve agent processes in three groups share it.
    with FakeLLM(limits={"requests": Bucket(120, burst_s=3)}, call_s=(0.05, 0.3)) as llm:
        groups = [
            _group("claude", llm.url, 4).replace('name = "llm"', f'name = "llm{n}"')
            for n in range(3)
        ]
        root = _write(
            tmp_path / "swarm",
            _store_toml(backend, tmp_path, request),
            *groups,
            _limit("claude", requests_per_minute=120, burst_s=1.5),
            _work(18),
        )
        run = _swarm(root, "up", "--until-drained", timeout=180)
        assert run.returncode == 0, run.stderr
        assert llm.throttled == 0  # the provider never had to refuse a call
        assert len(llm.accepted) == 18
    roots = [root]
    done = _results(*roots)
    assert len(done) == 18
    assert {r["status"] for r in done.values()} == {"completed"}
    assert all(r["attempts"] == 0 for r in done.values())
    usage = [r["usage"] for r in done.values()]
    assert all(u["output_tokens"] == 9 and u["input_tokens"] > 0 for u in usage)
    cost = _swarm(roots[0], "cost", "--json")
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["total"]["calls"] == 18


def test_a_429_storm_costs_no_attempt(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _storm("claude", _store_toml(backend, tmp_path, request), tmp_path)


def test_ollama_busy_answers_cost_no_attempt(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _storm("ollama", _store_toml("file", tmp_path, request), tmp_path)


def _storm(client: str, store: str, tmp_path: Path) -> None:
    # [[limits]] is far above what the provider really allows: the 429s it answers
    # (with retry-after) must slow the whole swarm down, and never use up an attempt.
    with FakeLLM(limits={"requests": Bucket(60, burst_s=2)}, call_s=(0.05, 0.2)) as llm:
        root = _write(
            tmp_path / "swarm",
            store.replace("lease_s = 20", "max_attempts = 1"),
            _group(client, llm.url, 4),
            _limit(client, requests_per_minute=600),
            _work(8),
        )
        run = _swarm(root, "up", "--until-drained", timeout=180)
        assert run.returncode == 0, run.stderr
        assert llm.throttled > 0
    done = _results(root)
    assert {r["status"] for r in done.values()} == {"completed"} and len(done) == 8
    assert all(r["attempts"] == 0 for r in done.values())
    assert sum(r["usage"]["throttled_waits"] for r in done.values()) >= 1
    # The time lost to limits is in the traces: admission waits, and usage on each item.
    spans = [
        json.loads(line)
        for line in (tmp_path / "telemetry_spans.jsonl").read_text().splitlines()
        if line.strip()
    ]
    waits = [s for s in spans if s["name"] == "gen_ai.client.admission"]
    assert any(w["attributes"]["swarm.limits.after_throttle"] for w in waits)
    assert all(w["attributes"]["swarm.limits.waited_by"] == ["provider"] for w in waits)
    items = [s for s in spans if s["name"] == "invoke_agent llm"]
    assert len(items) >= 8
    assert all("swarm.usage.cost_usd" in s["attributes"] for s in items)
    assert all(s["attributes"]["gen_ai.usage.output_tokens"] == 9 for s in items)


def _completed(store_toml: str, root: Path) -> int:
    from orchestrator.config import load_config
    from orchestrator.wiring import open_store

    config = load_config(root / "swarm.toml")
    store = open_store(config.store_target(), config.store)
    try:
        return sum(1 for i in store.list_work() if i.status == "completed")
    finally:
        store.close()


def test_a_budget_stops_claiming_at_the_boundary_and_raising_it_goes_on(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Each call costs exactly $0.01 (10 output tokens at $1000/Mtok); the budget is $0.05.
    store = _store_toml(backend, tmp_path, request)
    price = '[prices."claude-test"]\ninput_per_mtok = 0.0\noutput_per_mtok = 1000.0\n'
    with FakeLLM(limits={}, call_s=(0.05, 0.2), output_tokens=10) as llm:
        group = _group("claude", llm.url, 3)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        store += f"\n[supervisor]\nmetrics_port = {port}\n"
        root = _write(
            tmp_path / "swarm", store, group, price, "[budget]\nmax_usd = 0.05\n", _work(10)
        )
        proc = subprocess.Popen(
            [SWARM, "up"], cwd=root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:

            def exhausted() -> bool:
                run = _swarm(root, "limits", "--json")
                budgets = json.loads(run.stdout)["budgets"] if run.returncode == 0 else []
                return any(b["budget"] == "budget" and b["exhausted"] for b in budgets)

            wait_for(exhausted, timeout=90, every=0.3)
            status = _swarm(root, "limits")
            assert "budget: $0.0500 spent of $0.05 EXHAUSTED" in status.stdout, status.stdout
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                metrics = r.read().decode()
            assert 'swarm_llm_cost_usd_total{group="llm",model="claude-test"} 0.05' in metrics
            assert 'swarm_llm_calls_total{group="llm",model="claude-test"} 5.0' in metrics
            assert 'swarm_budget_spent_usd{budget="budget"} 0.05' in metrics
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        assert _completed(store, root) == 5
        assert len(llm.accepted) == 5
        # Raised in swarm.toml: after a restart the swarm goes on, nothing lost or doubled.
        text = (root / "swarm.toml").read_text().replace("max_usd = 0.05", "max_usd = 0.08")
        (root / "swarm.toml").write_text(text)
        proc = subprocess.Popen(
            [SWARM, "up"], cwd=root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            wait_for(lambda: _completed(store, root) >= 8, timeout=90, every=0.3)
            wait_for(exhausted, timeout=30, every=0.3)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        assert _completed(store, root) == 8
        assert len(llm.accepted) == 8
    assert len(_results(root)) == 8
    cost = json.loads(_swarm(root, "cost", "--json", "--by", "model").stdout)
    assert cost["total"]["calls"] == 8 and cost["total"]["cost_usd"] == pytest.approx(0.08)


def test_a_killed_agents_reservation_is_given_back(tmp_path: Path) -> None:
    # One call in flight at a time; the agent making it is killed mid-call: its slot must
    # be free at once (its reservation would otherwise hold it for minutes).
    with FakeLLM(limits={}, call_s=(6.0, 6.0)) as llm:
        root = _write(
            tmp_path / "swarm",
            f'[store]\npath = "{tmp_path / "store"}"\nlease_s = 30\n',
            _group("claude", llm.url, 2, restart="never"),
            _limit("claude", max_concurrent=1),
            _work(1),
        )
        proc = subprocess.Popen(
            [SWARM, "up", "--until-drained"],
            cwd=root,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: len(llm.requests) >= 1, timeout=60)
            holder = wait_for(
                lambda: next(
                    a
                    for a in json.loads((root / "real_agents" / "supervisor.json").read_text())[
                        "agents"
                    ]
                    if a.get("current")
                ),
                timeout=30,
            )
            os.kill(holder["pid"], signal.SIGKILL)
            # The other agent is admitted and calls well before the first call would end.
            wait_for(lambda: len(llm.requests) >= 2, timeout=5.5)
            _, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:  # failed: end the swarm this test started, agents too
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    done = _results(root)
    assert [r["status"] for r in done.values()] == ["completed"]
