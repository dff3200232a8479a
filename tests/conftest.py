"""Shared fixtures: the store contract runs once per backend listed in BACKENDS.

PostgreSQL tests use SWARM_TEST_PG_DSN (default: the local server); `make test` runs
them under scripts/with-postgres.sh, which starts a throwaway server when none
answers. They fail, never skip, when the database cannot be reached.

Tests about time (leases) move the store's clock with ``store_clock.advance(seconds)``
instead of sleeping, so they do not depend on how busy the machine is.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import psutil
import psycopg
import pytest

from orchestrator.store.file import FileStore

BACKENDS = ["file", "postgres"]
PG_DSN = os.environ.get("SWARM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

SWARM = str(Path(sys.executable).with_name("swarm"))

StoreFactory = Callable[..., Any]


def wait_for(predicate: Any, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true, and return that; a file not
    written yet or half written counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (FileNotFoundError, json.JSONDecodeError, KeyError, StopIteration):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the file store's journal writes fail as on a full disk, part of the
    record reaching the file first (``monkeypatch.undo()`` frees the disk)."""
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        real_write(fd, data[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("orchestrator.store.file.os.write", full)


def still_running(pid: int, marker: tuple[str, str]) -> bool:
    """Whether ``pid`` is a live process (not a zombie) of the test that set the
    environment variable ``marker = (name, value)`` for the processes it started: a pid
    the system has since reused for someone else's process does not count."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        name, value = marker
        return bool(proc.environ().get(name) == value)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


@pytest.fixture(autouse=True)
def _spans_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands a test runs without a folder of their own must not write spans into the
    checkout (tests about the span file's default place clear this variable)."""
    monkeypatch.setenv("TELEMETRY_SPANS_FILE", str(tmp_path / "telemetry_spans.jsonl"))


@pytest.fixture(autouse=True)
def _no_swarmsh_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """SwarmSH's variables in the shell running the tests must not steer their commands
    (tests about them set them)."""
    monkeypatch.delenv("COORDINATION_DIR", raising=False)
    monkeypatch.delenv("COORDINATION_MODE", raising=False)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL tests need a server at {PG_DSN} (SWARM_TEST_PG_DSN): {exc}", pytrace=False
        )
    return PG_DSN


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    yield schema
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class StoreClock(Protocol):
    def advance(self, seconds: float) -> None:
        """Move the store's time forward by ``seconds``."""


class FileClock:
    """A clock for FileStore(clock=...): real time plus what the test advanced it by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


# Every time the PostgreSQL schema stores, by table (migrations/0001_initial.sql).
PG_TIMES = {
    "work_items": (
        "created_at",
        "updated_at",
        "claimed_at",
        "completed_at",
        "lease_expires_at",
    ),
    "agents": ("registered_at", "last_heartbeat"),
    "events": ("ts",),
}


class PgClock:
    """The PostgreSQL store reads the server's clock (``swarm_now()``), which a test
    cannot set: moving every time stored in the test's schema back by ``seconds`` is
    the same, for the store, as its clock moving forward by ``seconds``."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    def advance(self, seconds: float) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn, conn.transaction():
            for table, columns in PG_TIMES.items():
                shifted = ", ".join(f"{c} = {c} - %(s)s" for c in columns)
                conn.execute(f"UPDATE {self.schema}.{table} SET {shifted}", {"s": seconds})


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_clock(backend: str, request: pytest.FixtureRequest) -> StoreClock:
    """The clock of the store ``make_store`` opens: every handle shares it."""
    if backend == "postgres":
        return PgClock(request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema"))
    return FileClock()


@pytest.fixture
def make_store(
    backend: str, store_clock: StoreClock, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    """Open (another handle on) one fresh store; each call is a separate view of it."""
    opened: list[Any] = []
    if backend == "postgres":
        from orchestrator.store.postgres import PostgresStore

        dsn = request.getfixturevalue("pg_dsn")
        schema = request.getfixturevalue("pg_schema")

        def factory(**settings: Any) -> Any:
            store = PostgresStore(dsn, schema=schema, **settings)
            opened.append(store)
            return store
    else:
        assert isinstance(store_clock, FileClock)
        clock = store_clock

        def factory(**settings: Any) -> Any:
            store = FileStore(tmp_path / "store", clock=clock, **settings)
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
