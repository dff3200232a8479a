"""A small HTTP server that speaks enough of Ollama's /api/chat and Anthropic's
/v1/messages for the official clients, replaying scripted responses."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.answered = 0  # replies written in full
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
                reply = (
                    fake.replies.popleft() if fake.replies else Reply(500, {"error": "no reply"})
                )
                if reply.before is not None:
                    reply.before()
                time.sleep(reply.delay_s)
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

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
