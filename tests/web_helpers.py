"""A real `swarm serve` process for the HTTP API tests, and reading its event stream."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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


class Terminal:
    """A pseudo-terminal for a child's stdout: what a person running it would see."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self._buffer = b""

    def started(self) -> None:
        """The child holds the terminal now: only it keeps it open."""
        os.close(self.slave)

    def readline(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            # poll, not select: select refuses descriptors past 1023 in a long test run
            waiting = select.poll()
            waiting.register(self.master, select.POLLIN)
            if not waiting.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise AssertionError(f"no line on the terminal: {self._buffer!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the child has gone: the terminal is closed
                chunk = b""
            if not chunk:
                break
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().rstrip("\r") + "\n"

    def close(self) -> None:
        os.close(self.master)


class Served:
    """`swarm serve --port 0` in ``root``; ``url`` read from its first line (written
    to a pipe, or to a terminal with ``tty``)."""

    def __init__(
        self, root: Path, *args: str, token: str | None = TOKEN, tty: bool = False
    ) -> None:
        extra = {"SWARM_HTTP_TOKEN": token} if token else {}
        self.root = root
        self.terminal = Terminal() if tty else None
        self.proc = subprocess.Popen(
            [SWARM, "serve", "--port", "0", *args],
            cwd=root,
            env=env(**extra),
            stdout=self.terminal.slave if self.terminal else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if self.terminal:
            self.terminal.started()
        self.output: Terminal | IO[str] | None = self.terminal or self.proc.stdout
        assert self.output is not None
        self.first_line = self.output.readline()
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
            if self.terminal:
                self.terminal.close()
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


__all__ = ["TOKEN", "Events", "Served", "Terminal", "free_port", "swarm", "wait_for"]
