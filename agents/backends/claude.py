"""Ask Claude through the official ``anthropic`` SDK (messages API).

Key: ``ANTHROPIC_API_KEY``. Timeout: ``CLAUDE_TIMEOUT`` seconds, else the group's
``timeout_s``. Model: the group's ``model``. Endpoint: the group's ``host``, else
``ANTHROPIC_BASE_URL``, else Anthropic's.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from agents.backends import Outcome, system_prompt, user_message
from agents.backends.retry import Cancelled, ThrottleHook, remaining, retry_after, with_retries
from orchestrator.errors import InvalidArgument
from orchestrator.numbers import check_number

if TYPE_CHECKING:
    from orchestrator.config import AgentGroup
    from orchestrator.records import WorkItem

DEFAULT_MODEL = "claude-sonnet-4-5"


class ClaudeBackend:
    name = "claude"

    def __init__(self, group: AgentGroup) -> None:
        self.group = group
        self.model = group.model or DEFAULT_MODEL
        self.system = system_prompt(group)
        self.key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
        raw_timeout = os.environ.get("CLAUDE_TIMEOUT", "").strip()
        try:
            self.timeout_s = float(raw_timeout) if raw_timeout else group.timeout_s
            check_number(self.timeout_s, "CLAUDE_TIMEOUT", minimum=0.001)
        except (ValueError, InvalidArgument):
            raise ValueError(f"CLAUDE_TIMEOUT={raw_timeout!r} is not a number of seconds") from None
        self.client = None
        # Set by the agent loop when the swarm admits calls: a 429/529 waits there.
        self.throttle: ThrottleHook | None = None
        if self.key:
            import anthropic

            self._anthropic = anthropic
            self.client = anthropic.Anthropic(
                api_key=self.key,
                base_url=group.host or os.environ.get("ANTHROPIC_BASE_URL") or None,
                timeout=self.timeout_s,
                max_retries=0,  # we retry ourselves, with the group's limits
            )

    def _retryable(self, exc: BaseException) -> bool:
        a = self._anthropic
        if isinstance(exc, a.APIStatusError):
            return exc.status_code in (408, 429, 500, 502, 503, 504, 529)
        return isinstance(exc, a.APIConnectionError)  # includes APITimeoutError

    def _throttled(self, exc: BaseException) -> bool:
        """Rate limited (429) or overloaded (529): not the item's fault."""
        return isinstance(exc, self._anthropic.APIStatusError) and exc.status_code in (429, 529)

    def _on_throttle(self, exc: BaseException) -> bool:
        assert self.throttle is not None
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return self.throttle(retry_after(headers), remaining(headers))

    def run(self, item: WorkItem, cancel: threading.Event) -> Outcome:
        if self.client is None:
            return Outcome(
                False,
                error="ANTHROPIC_API_KEY is not set: export it for the claude backend",
                model=self.model,
            )
        client = self.client
        a = self._anthropic
        details: dict[str, Any] = {"provider": "anthropic"}
        try:
            raw = with_retries(
                lambda: client.messages.with_raw_response.create(
                    model=self.model,
                    max_tokens=self.group.max_tokens,
                    system=self.system,
                    messages=[{"role": "user", "content": user_message(item)}],
                ),
                self._retryable,
                retries=self.group.retries,
                initial_s=self.group.retry_backoff_s,
                cancel=cancel,
                what=f"claude {self.model}",
                throttled=self._throttled,
                on_throttle=self._on_throttle if self.throttle is not None else None,
            )
            details["ratelimit"] = remaining(raw.headers)
            message = raw.parse()
        except Cancelled:
            # Not the item's fault: the agent gives it back without using an attempt.
            return Outcome(
                False,
                error="cancelled: the agent is stopping",
                model=self.model,
                details={"cancelled": True},
            )
        except a.APITimeoutError:
            return Outcome(
                False,
                error=f"Claude did not answer within {self.timeout_s:g}s (CLAUDE_TIMEOUT)",
                model=self.model,
                details=details,
            )
        except a.APIConnectionError as exc:
            return Outcome(
                False,
                error=f"cannot reach the Anthropic API: {exc}",
                model=self.model,
                details=details,
            )
        except a.APIStatusError as exc:
            if self._throttled(exc):
                details["throttled"] = True
            return Outcome(
                False,
                error=f"Anthropic API error {exc.status_code}: {exc.message}"[:500],
                model=self.model,
                details=details,
            )
        except (a.APIError, ValueError) as exc:  # malformed responses
            return Outcome(
                False,
                error=f"malformed response from the Anthropic API: {exc}"[:500],
                model=self.model,
                details=details,
            )
        text = "".join(block.text for block in message.content if block.type == "text")
        details["finish_reason"] = str(message.stop_reason)
        return Outcome(
            True,
            output=text,
            model=message.model,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            details=details,
        )


def create(group: AgentGroup) -> ClaudeBackend:
    return ClaudeBackend(group)
