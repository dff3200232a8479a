"""The secrets of this process as redaction reads them: kept between calls, and read
again whenever the environment changes."""

from __future__ import annotations

import pytest

from orchestrator.redaction import REDACTED, redact, secret_values


def test_a_secret_set_changed_or_removed_is_seen_at_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = "sk-first-0123456789", "sk-second-0123456789"
    monkeypatch.setenv("SWARM_TEST_API_KEY", first)
    assert redact(f"key {first}") == f"key {REDACTED}"
    assert redact(f"key {first}") == f"key {REDACTED}"  # from what was kept
    monkeypatch.setenv("SWARM_TEST_API_KEY", second)
    assert redact(f"{first} {second}") == f"{first} {REDACTED}"
    monkeypatch.delenv("SWARM_TEST_API_KEY")
    assert second not in secret_values()
    assert redact(second) == second


def test_the_kept_secrets_are_the_callers_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TEST_TOKEN", "tok-0123456789")
    secret_values().clear()
    assert secret_values().count("tok-0123456789") == 1


def test_an_explicit_environment_is_read_as_given() -> None:
    assert secret_values({"A_PASSWORD": "hunter2-long", "OTHER": "x" * 10}) == ["hunter2-long"]
