"""Chat with a model served by Ollama through the official ``ollama`` client.

Host: the group's ``host``, else ``OLLAMA_HOST``, else http://localhost:11434.
Model: the group's ``model``, else ``OLLAMA_MODEL``, else ``qwen3``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from agents.backends import Outcome, system_prompt, user_message
from agents.backends.retry import Cancelled, ThrottleHook, with_retries

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem

RETRY_STATUS = {408, 429, 500, 502, 503, 504, 529}
# Too many requests, or "server busy" (its queue is full: OLLAMA_MAX_QUEUE).
BUSY_STATUS = {429, 503}


class OllamaBackend:
    name = "ollama"

    def __init__(self, group: AgentGroup) -> None:
        import httpx
        import ollama

        self._ollama = ollama
        self._httpx = httpx
        self.group = group
        self.host = group.host or os.environ.get("OLLAMA_HOST") or "http://localhost:11434"
        self.model = group.model or os.environ.get("OLLAMA_MODEL") or "qwen3"
        self.client = ollama.Client(host=self.host, timeout=group.timeout_s)
        self.system = system_prompt(group)
        # Set by the agent loop when the swarm admits calls: a busy answer waits there.
        self.throttle: ThrottleHook | None = None

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, self._ollama.ResponseError):
            return exc.status_code in RETRY_STATUS
        return isinstance(exc, ConnectionError | self._httpx.TransportError)

    def _throttled(self, exc: BaseException) -> bool:
        return isinstance(exc, self._ollama.ResponseError) and exc.status_code in BUSY_STATUS

    def _on_throttle(self, exc: BaseException) -> bool:
        assert self.throttle is not None
        return self.throttle(None, {})

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": user_message(item)},
        ]
        details: dict[str, Any] = {"provider": "ollama", "host": self.host}
        try:
            response = with_retries(
                lambda: self.client.chat(model=self.model, messages=messages),
                self._retryable,
                retries=self.group.retries,
                initial_s=self.group.retry_backoff_s,
                cancel=cancel,
                what=f"ollama chat {self.model}",
                throttled=self._throttled,
                on_throttle=self._on_throttle if self.throttle is not None else None,
            )
        except Cancelled:
            # Not the item's fault: the agent gives it back without using an attempt.
            return Outcome(
                False,
                error="cancelled: the agent is stopping",
                model=self.model,
                details={"cancelled": True},
            )
        except self._ollama.ResponseError as exc:
            if self._throttled(exc):
                details["throttled"] = True
            return Outcome(
                False,
                error=f"Ollama at {self.host} answered {exc}",
                model=self.model,
                details=details,
            )
        except self._httpx.TimeoutException:
            return Outcome(
                False,
                error=f"Ollama at {self.host} did not answer within {self.group.timeout_s:g}s",
                model=self.model,
                details=details,
            )
        except (ConnectionError, self._httpx.TransportError) as exc:
            return Outcome(
                False,
                error=f"cannot reach Ollama at {self.host}: {exc or type(exc).__name__}",
                model=self.model,
                details=details,
            )
        except ValueError as exc:  # malformed JSON or an unexpected response shape
            return Outcome(
                False,
                error=f"malformed response from Ollama at {self.host}: {exc}"[:500],
                model=self.model,
                details=details,
            )
        details["finish_reason"] = response.done_reason
        return Outcome(
            True,
            output=response.message.content or "",
            model=response.model or self.model,
            input_tokens=response.prompt_eval_count,
            output_tokens=response.eval_count,
            details=details,
        )


def create(group: AgentGroup) -> OllamaBackend:
    return OllamaBackend(group)
