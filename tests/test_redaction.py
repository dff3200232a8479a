"""The secrets of this process as redaction reads them: kept between calls, and read
again whenever the environment changes."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from orchestrator import redaction
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


def test_what_is_kept_is_what_was_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread changes the environment while it is read, then puts it back: the
    secrets kept must be those of the environment they are kept with."""
    secret = "tok-race-0123456789"
    monkeypatch.setenv("SWARM_RACE_TOKEN", secret)
    monkeypatch.setattr(redaction, "_last_read", None)
    scan = redaction._secrets_in

    def scan_while_the_environment_changes(env: Mapping[str, str]) -> list[str]:
        del os.environ["SWARM_RACE_TOKEN"]
        try:
            return scan(env)
        finally:
            os.environ["SWARM_RACE_TOKEN"] = secret

    monkeypatch.setattr(redaction, "_secrets_in", scan_while_the_environment_changes)
    secret_values()
    monkeypatch.setattr(redaction, "_secrets_in", scan)
    assert redact(f"key {secret}") == f"key {REDACTED}"
