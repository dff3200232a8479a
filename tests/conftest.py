"""Shared fixtures: the store contract runs once per backend listed in BACKENDS."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store.file import FileStore

BACKENDS = ["file"]

SWARM = str(Path(sys.executable).with_name("swarm"))

StoreFactory = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open (another handle on) one fresh store; each call is a separate view of it."""
    opened: list[FileStore] = []

    def factory(**settings: Any) -> FileStore:
        store = FileStore(tmp_path / "store", **settings)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Any:
    return make_store()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the real `swarm` command against a scratch store."""
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_CONFIG")}
    env["SWARM_STORE"] = str(tmp_path / "cli_store")
    return env
