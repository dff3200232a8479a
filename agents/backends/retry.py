"""Retries with exponential backoff and full jitter for calls to LLM services."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Cancelled(Exception):
    """The agent is stopping; the call was abandoned between attempts."""


def with_retries(
    call: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    *,
    retries: int,
    initial_s: float,
    max_s: float = 30.0,
    cancel: threading.Event | None = None,
    what: str = "call",
    throttled: Callable[[BaseException], bool] | None = None,
    on_throttle: Callable[[BaseException], bool] | None = None,
    max_throttles: int = 100,
) -> T:
    """Run ``call``; on a retryable error wait ``initial_s * 2**n`` (jittered, at most
    ``max_s``) and try again, ``retries`` times at most. The last error propagates.

    A ``throttled`` error (429, overload) with an ``on_throttle`` hook (the swarm's
    admission: it waits until the swarm may call again) is retried without using up
    ``retries``; the hook returns False when the agent stops."""
    attempt = 0
    throttles = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if (
                on_throttle is not None
                and throttled is not None
                and throttled(exc)
                and throttles < max_throttles
            ):
                throttles += 1
                logger.info("%s throttled (%s); waiting for the swarm's admission", what, exc)
                if not on_throttle(exc):
                    raise Cancelled from exc
                continue
            if attempt >= retries or not retryable(exc):
                raise
            delay = random.uniform(0, min(max_s, initial_s * 2**attempt))
            attempt += 1
            logger.info("%s failed (%s); retry %d/%d in %.2fs", what, exc, attempt, retries, delay)
            if cancel is not None and cancel.wait(delay):
                raise Cancelled from exc
            if cancel is None:
                threading.Event().wait(delay)


ThrottleHook = Callable[[float | None, dict[str, float]], bool]

REMAINING = {
    "requests": "anthropic-ratelimit-requests-remaining",
    "input_tokens": "anthropic-ratelimit-input-tokens-remaining",
    "output_tokens": "anthropic-ratelimit-output-tokens-remaining",
}


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from a ``retry-after`` header (seconds or an HTTP date)."""
    if not headers:
        return None
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def remaining(headers: Mapping[str, str] | None) -> dict[str, float]:
    """What the provider says is left of each figure (Anthropic's rate-limit headers)."""
    found: dict[str, float] = {}
    for figure, name in REMAINING.items():
        raw = headers.get(name) if headers else None
        if raw is not None:
            try:
                found[figure] = float(raw)
            except ValueError:
                continue
    return found
