"""A real `swarm serve` process for the HTTP API tests, and reading its event stream."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from .conftest import SWARM, wait_for

TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k not in ("AGENT_ID", "SWARM_STORE")}
    keep.pop("SWARM_HTTP_TOKEN", None)
    return keep | extra


class Served:
    """`swarm serve --port 0` in ``root``; ``url`` read from its first line."""

    def __init__(self, root: Path, *args: str, token: str | None = TOKEN) -> None:
        extra = {"SWARM_HTTP_TOKEN": token} if token else {}
        self.root = root
        self.proc = subprocess.Popen(
            [SWARM, "serve", "--port", "0", *args],
            cwd=root,
            env=env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        found = re.search(r"(http://\S+?/)(#token=(\S+))?$", self.first_line.strip())
        assert found, (self.first_line, self.proc.stderr.read() if self.proc.stderr else "")
        self.url = found.group(1)
        self.token = found.group(3) or token
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, body: Any = None, token: bool = True) -> httpx.Response:
        headers = self.auth() if token else {}
        content = b"" if body is None else orjson.dumps(body)
        return self.client.post(path, content=content, headers=headers)

    def close(self) -> str:
        """Stop it (SIGTERM) and return what it wrote on stderr; once."""
        if self.proc.returncode is None:
            self.client.close()
            self.proc.terminate()
            _, self.stderr = self.proc.communicate(timeout=15)
        return self.stderr


def swarm(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWARM, *args], cwd=root, env=env(**extra), capture_output=True, text=True, timeout=60
    )


class Events:
    """An open `GET /api/events`: ``take(n)`` returns the next n events as dicts with
    id, event and data."""

    def __init__(self, client: httpx.Client, last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._cm = client.stream("GET", "/api/events", headers=headers, timeout=30)
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200
        self._lines: Iterator[str] = self.response.iter_lines()
        assert next(self._lines).startswith("retry:")  # sent once the reader is placed

    def take(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        for line in self._lines:
            if time.monotonic() > deadline:
                break
            if not line:
                if "data" in current:
                    events.append(current)
                    if len(events) == count:
                        return events
                current = {}
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(": ")
                current[field] = orjson.loads(value) if field == "data" else value
        raise AssertionError(f"only {len(events)} of {count} events: {events}")

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


__all__ = ["TOKEN", "Events", "Served", "free_port", "swarm", "wait_for"]
