"""Backends: real commands, a python function, and the official Ollama and Anthropic
clients against a local server that speaks their APIs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agents.backends import load_backend
from orchestrator.config import AgentGroup
from orchestrator.records import WorkItem

from .conftest import still_running, wait_for
from .fake_llm import FakeLLM, Reply, claude_error, claude_ok, ollama_ok


def _item(payload: Any = None, description: str = "what is 2+2?") -> WorkItem:
    return WorkItem(
        work_item_id="work_1_abc", work_type="t", description=description, payload=payload
    )


def _run(group: AgentGroup, item: WorkItem, cancel: threading.Event | None = None) -> Any:
    return load_backend(group).run(item, cancel or threading.Event())


# -- command -----------------------------------------------------------------------------


def test_command_keeps_stdout_stderr_and_exit_code(tmp_path: Path) -> None:
    group = AgentGroup(name="g")
    ok = _run(
        group,
        _item(
            {
                "argv": [
                    "sh",
                    "-c",
                    "echo out; echo err >&2; echo $X $SWARM_WORK_ITEM_ID",
                ],
                "env": {"X": "42"},
                "cwd": str(tmp_path),
            }
        ),
    )
    assert ok.ok and ok.output["exit_code"] == 0
    assert ok.output["stdout"] == "out\n42 work_1_abc\n" and ok.output["stderr"] == "err\n"
    bad = _run(group, _item({"argv": ["sh", "-c", "echo broken >&2; exit 7"]}))
    assert not bad.ok and bad.output["exit_code"] == 7 and bad.error == "exit code 7: broken"
    missing = _run(group, _item({"argv": ["/no/such/program"]}))
    assert not missing.ok and "cannot run" in missing.error


def test_command_string_needs_shell_true(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    refused = _run(AgentGroup(name="g"), _item({"argv": f"touch {marker}"}))
    assert not refused.ok and "shell = true" in refused.error and not marker.exists()
    allowed = _run(AgentGroup(name="g", shell=True), _item({"argv": f"touch {marker} && echo ok"}))
    assert allowed.ok and marker.exists()
    assert not _run(AgentGroup(name="g"), _item({"nothing": 1})).ok


def test_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    # Each sleep's pid goes to a file as it starts; the environment marks them as ours.
    pids = tmp_path / "pids"
    marker = ("SWARMSH_TEST_RUN", str(tmp_path))
    script = f"sleep 30 & echo $! > {pids}; sleep 30 & echo $! >> {pids}; wait"
    group = AgentGroup(name="g", timeout_s=1)
    started = time.monotonic()
    result = _run(group, _item({"argv": ["sh", "-c", script], "env": dict([marker])}))
    assert not result.ok and result.error == "timed out after 1s"
    assert time.monotonic() - started < 10  # not the 30 s its sleeps would take
    sleeps = [int(pid) for pid in pids.read_text().split()]
    assert len(sleeps) == 2, f"stopped before both sleeps started: {sleeps}"
    wait_for(lambda: not any(still_running(pid, marker) for pid in sleeps), timeout=10)


def test_command_cancel_stops_it() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = _run(AgentGroup(name="g"), _item({"argv": ["sleep", "30"]}), cancel)
    assert not result.ok and result.error.startswith("cancelled")


# -- python ----------------------------------------------------------------------------------


def double(item: WorkItem) -> dict[str, Any]:
    return {"double": item.payload["n"] * 2}


def explode(item: WorkItem) -> None:
    raise RuntimeError("kaboom")


def not_json(item: WorkItem) -> object:
    return object()


def test_python_backend_calls_the_function() -> None:
    assert _run(
        AgentGroup(name="g", backend="python", function="tests.test_backends:double"),
        _item({"n": 21}),
    ).output == {"double": 42}
    boom = _run(
        AgentGroup(name="g", backend="python", function="tests.test_backends:explode"), _item()
    )
    assert not boom.ok and boom.error == "RuntimeError: kaboom"
    odd = _run(
        AgentGroup(name="g", backend="python", function="tests.test_backends:not_json"), _item()
    )
    assert not odd.ok and "not JSON-able" in odd.error
    with pytest.raises((ImportError, AttributeError)):
        load_backend(AgentGroup(name="g", backend="python", function="tests.test_backends:nope"))


# -- ollama ----------------------------------------------------------------------------------


def _ollama(url: str, **extra: Any) -> AgentGroup:
    options: dict[str, Any] = {"retries": 3, "retry_backoff_s": 0.01} | extra
    return AgentGroup(
        name="g",
        backend="ollama",
        host=url,
        model="qwen3",
        role="analyst",
        specialization="arithmetic",
        **options,
    )


def test_ollama_chat_records_tokens_and_prompts() -> None:
    with FakeLLM() as llm:
        llm.replies.append(ollama_ok("4"))
        result = _run(_ollama(llm.url), _item())
    assert result.ok and result.output == "4"
    assert (result.model, result.input_tokens, result.output_tokens) == ("qwen3", 21, 7)
    sent = llm.requests[0]
    assert sent["path"] == "/api/chat" and sent["json"]["model"] == "qwen3"
    system, user = sent["json"]["messages"]
    assert "analyst" in system["content"] and "arithmetic" in system["content"]
    assert user == {"role": "user", "content": "what is 2+2?"}


def test_ollama_retries_429_then_succeeds_and_gives_up_on_overload() -> None:
    with FakeLLM() as llm:
        llm.replies.extend([Reply(429, {"error": "busy"}), ollama_ok("ok")])
        assert _run(_ollama(llm.url), _item()).output == "ok"
        assert len(llm.requests) == 2
        llm.replies.extend([Reply(529, {"error": "overloaded"})] * 4)
        result = _run(_ollama(llm.url), _item())
    assert not result.ok and "overloaded" in result.error and len(llm.requests) == 6


def test_ollama_timeout_malformed_and_unreachable() -> None:
    with FakeLLM() as llm:
        llm.replies.append(Reply(200, ollama_ok().body, delay_s=2))
        slow = _run(_ollama(llm.url, timeout_s=0.3, retries=0), _item())
        assert not slow.ok and "did not answer within 0.3s" in slow.error
        llm.replies.append(Reply(200, b"{this is not json"))
        bad = _run(_ollama(llm.url), _item())
        assert not bad.ok and "malformed response" in bad.error
    with FakeLLM() as closed:
        url = closed.url
    down = _run(_ollama(url, retries=1), _item())
    assert not down.ok and down.error.startswith(f"cannot reach Ollama at {url}")


# -- claude ----------------------------------------------------------------------------------


def _claude(url: str, **extra: Any) -> AgentGroup:
    options: dict[str, Any] = {"retries": 3, "retry_backoff_s": 0.01} | extra
    return AgentGroup(
        name="g", backend="claude", host=url, model="claude-test", max_tokens=64, **options
    )


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-ant-test-secret-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.delenv("CLAUDE_TIMEOUT", raising=False)
    return key


def test_claude_messages_records_usage(api_key: str) -> None:
    with FakeLLM() as llm:
        llm.replies.append(claude_ok("4"))
        result = _run(_claude(llm.url), _item())
    assert result.ok and result.output == "4"
    assert (result.model, result.input_tokens, result.output_tokens) == ("claude-test", 33, 9)
    assert result.details["finish_reason"] == "end_turn"
    sent = llm.requests[0]
    assert sent["path"] == "/v1/messages"
    auth = sent["headers"].get("x-api-key") or sent["headers"].get("authorization", "")
    assert auth.endswith(api_key)
    assert (
        sent["json"]["max_tokens"] == 64
        and sent["json"]["messages"][0]["content"] == "what is 2+2?"
    )


def test_claude_retries_rate_limit_and_overload(api_key: str) -> None:
    with FakeLLM() as llm:
        llm.replies.extend(
            [
                claude_error(429, "rate_limit_error"),
                claude_error(529, "overloaded_error"),
                claude_ok("fine"),
            ]
        )
        assert _run(_claude(llm.url), _item()).output == "fine"
        assert len(llm.requests) == 3
        llm.replies.extend([claude_error(529, "overloaded_error")] * 4)
        result = _run(_claude(llm.url), _item())
    assert not result.ok and "529" in result.error


def test_claude_timeout_malformed_auth_and_missing_key(
    api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeLLM() as llm:
        monkeypatch.setenv("CLAUDE_TIMEOUT", "0.3")
        llm.replies.append(Reply(200, claude_ok().body, delay_s=2))
        slow = _run(_claude(llm.url, retries=0), _item())
        assert not slow.ok and "within 0.3s (CLAUDE_TIMEOUT)" in slow.error
        monkeypatch.delenv("CLAUDE_TIMEOUT")
        llm.replies.append(Reply(200, b"{not json"))
        assert "malformed response" in _run(_claude(llm.url), _item()).error
        llm.replies.append(claude_error(401, "authentication_error"))
        denied = _run(_claude(llm.url), _item())
        assert not denied.ok and "401" in denied.error and len(llm.requests) == 3  # no retry
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    missing = _run(_claude("http://127.0.0.1:9"), _item())
    assert not missing.ok and missing.error.startswith("ANTHROPIC_API_KEY is not set")
