"""Secrets stay out of every file a run writes; no shell unless asked; no world-write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from ..conftest import SWARM, wait_for
from ..fake_llm import FakeLLM, claude_error, claude_ok


def test_secrets_never_reach_the_run_directory(tmp_path: Path) -> None:
    key = "sk-ant-chaos-secret-key-4242424242"
    header_secret = "otlp-secret-token-31337"
    with FakeLLM() as claude:
        claude.replies.extend(
            [claude_ok("fine"), claude_error(401, "authentication_error"), claude_ok("fine")]
        )
        (tmp_path / "swarm.toml").write_text(
            f'[[agents]]\nname = "c"\nbackend = "claude"\nhost = "{claude.url}"\nretries = 0\n'
            'max_restarts = 2\n\n[[work]]\nwork_type = "ask"\ndescription = "q"\ncount = 3\n'
        )
        env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
        env |= {
            "ANTHROPIC_API_KEY": key,
            "LOG_LEVEL": "debug",
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {header_secret}",
        }
        up = subprocess.run(
            [SWARM, "up", "--detach", "--until-drained"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert up.returncode == 0, up.stderr
        state = tmp_path / "real_agents" / "supervisor.json"
        wait_for(lambda: json.loads(state.read_text())["status"] == "stopped", timeout=120)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "supervisor.log" for p in written)
    for path in written:
        data = path.read_bytes()
        assert key.encode() not in data, path
        assert header_secret.encode() not in data, path
        mode = path.stat().st_mode
        assert not mode & stat.S_IWOTH, f"{path} is world-writable"
    for folder in [p for p in tmp_path.rglob("*") if p.is_dir()]:
        assert not folder.stat().st_mode & stat.S_IWOTH, folder


def test_a_string_command_is_refused_without_shell_true(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "swarm.toml").write_text(
        '[[agents]]\nname = "w"\n\n[[work]]\nwork_type = "t"\ndescription = "d"\n'
        f'payload = {{ argv = "touch {marker}" }}\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SWARM_STORE", "AGENT_ID")}
    run = subprocess.run(
        [SWARM, "up", "--until-drained"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "1 item(s) ended dead" in run.stderr, run.stderr
    assert not marker.exists()
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "real_work_results").glob("*.json")]
    assert result["status"] == "dead" and "shell = true" in result["error"]
