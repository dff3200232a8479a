"""A small HTTP server that speaks enough of Ollama's /api/chat and Anthropic's
/v1/messages for the official clients, replaying scripted responses.

With ``limits`` it is a rate-limited provider instead: it answers every call, and
enforces a token bucket per figure as Anthropic documents them (capacity = the figure
over ``burst_s``, refilled continuously), answering 429 with ``retry-after`` and the
``anthropic-ratelimit-*`` headers when a bucket is short."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> sent as is; a callable -> called for them
    delay_s: float = 0.0
    echo: str | None = None  # a request header whose value starts the error message
    gate: threading.Event | None = None  # answer only once the test sets it
    before: Callable[[], object] | None = None  # run before answering (a race to stage)
    headers: dict[str, str] = field(default_factory=dict)


class Bucket:
    """The provider's side of a rate limit: a token bucket, full at the start."""

    def __init__(self, per_minute: float, burst_s: float = 60.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = self.rate * burst_s
        self.level = self.capacity
        self.at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def short_by(self, n: float) -> float:
        """Seconds until ``n`` fit (0: they fit now)."""
        self._refill()
        return 0.0 if self.level >= n else (n - self.level) / self.rate

    def take(self, n: float) -> None:
        self.level -= n

    def remaining(self) -> int:
        self._refill()
        return max(0, int(self.level))


def prompt_tokens(body: dict[str, Any]) -> int:
    """What the fake counts as a request's input tokens: its text length / 4."""
    text = str(body.get("system", "")) + json.dumps(body.get("messages", []))
    return max(1, len(text) // 4)


def claude_echo(status: int = 400, header: str = "x-api-key") -> Reply:
    """An endpoint that puts the request's key at the start of its error message."""
    return Reply(status, echo=header)


def ollama_ok(text: str = "4", model: str = "qwen3") -> Reply:
    return Reply(
        200,
        {
            "model": model,
            "created_at": "2026-11-24T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 21,
            "eval_count": 7,
        },
    )


def claude_ok(text: str = "4", model: str = "claude-test") -> Reply:
    return Reply(
        200,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 33, "output_tokens": 9},
        },
    )


def claude_error(status: int, kind: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": f"{kind} (test)"}})


class FakeLLM:
    def __init__(
        self,
        limits: dict[str, Bucket] | None = None,
        call_s: tuple[float, float] = (0.0, 0.0),
        output_tokens: int = 9,
    ) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.answered = 0  # replies written in full
        self.limits = limits
        self.call_s = call_s
        self.output_tokens = output_tokens
        self.accepted: list[float] = []  # monotonic times of calls let through
        self.throttled = 0  # 429 answers
        self.in_flight = 0
        self.max_in_flight = 0
        self._guard = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body or b"{}"),
                    }
                )
                if fake.limits is not None and not fake.replies:
                    reply = fake.metered(self.path, json.loads(body or b"{}"))
                else:
                    reply = (
                        fake.replies.popleft()
                        if fake.replies
                        else Reply(500, {"error": "no reply"})
                    )
                if reply.before is not None:
                    reply.before()
                time.sleep(reply.delay_s)
                with fake._guard:
                    fake.in_flight -= 1 if reply.status == 200 and fake.limits else 0
                if reply.gate is not None:
                    reply.gate.wait(60)
                if reply.echo is not None:
                    echoed = self.headers.get(reply.echo, "")
                    message = f"{echoed} is not a valid key for this request"
                    error = {"type": "invalid_request_error", "message": message}
                    reply = Reply(reply.status, {"type": "error", "error": error})
                body = reply.body() if callable(reply.body) else reply.body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    fake.answered += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def metered(self, path: str, body: dict[str, Any]) -> Reply:
        """Answer one call as a rate-limited provider would."""
        assert self.limits is not None
        tokens = prompt_tokens(body)
        needs = {"requests": 1.0, "input_tokens": float(tokens)}
        with self._guard:
            short = max(
                (b.short_by(needs.get(name, 0.0)) for name, b in self.limits.items()),
                default=0.0,
            )
            if short == 0.0:
                for name, bucket in self.limits.items():
                    bucket.take(needs.get(name, 0.0))
                self.accepted.append(time.monotonic())
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            else:
                self.throttled += 1
            headers = {
                f"anthropic-ratelimit-{name.replace('_', '-')}-remaining": str(b.remaining())
                for name, b in self.limits.items()
            }
        if short:
            headers["retry-after"] = str(math.ceil(short))
            if path.startswith("/api/"):
                return Reply(429, {"error": "too many requests (test)"}, headers=headers)
            reply = claude_error(429, "rate_limit_error")
            reply.headers = headers
            return reply
        delay = random.uniform(*self.call_s)
        if path.startswith("/api/"):
            reply = ollama_ok()
            reply.body["prompt_eval_count"] = tokens
            reply.body["eval_count"] = self.output_tokens
        else:
            reply = claude_ok(model=str(body.get("model", "claude-test")))
            reply.body["usage"] = {"input_tokens": tokens, "output_tokens": self.output_tokens}
        reply.delay_s = delay
        reply.headers = headers
        return reply

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
