"""Retries with exponential backoff and full jitter for calls to LLM services."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
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
) -> T:
    """Run ``call``; on a retryable error wait ``initial_s * 2**n`` (jittered, at most
    ``max_s``) and try again, ``retries`` times at most. The last error propagates."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            delay = random.uniform(0, min(max_s, initial_s * 2**attempt))
            attempt += 1
            logger.info("%s failed (%s); retry %d/%d in %.2fs", what, exc, attempt, retries, delay)
            if cancel is not None and cancel.wait(delay):
                raise Cancelled from exc
            if cancel is None:
                threading.Event().wait(delay)
