"""Asking the ``[intelligence]`` model for a JSON answer, validated against a pydantic
schema and cached by the hash of the question for CACHE_TTL minutes.

Through the official clients (``ollama`` with its ``format`` JSON-schema mode,
``anthropic`` with the schema in the system prompt). Whatever goes wrong (unreachable,
late, no key, not JSON, not the schema) comes back as an ``Answer`` without a value and
with the reason: callers fall back to their plain behaviour, they never fail for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator import redaction
from orchestrator.files import write_atomic
from orchestrator.intelligence.meter import Usage

if TYPE_CHECKING:
    from orchestrator.intelligence.meter import Meter
    from orchestrator.intelligence.settings import IntelligenceSettings

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass
class Answer(Generic[M]):
    value: M | None
    reason: str = ""  # why there is no value (the fallback's cause)
    cached: bool = False
    model: str = ""


def question_key(settings: IntelligenceSettings, system: str, prompt: str, schema: type[M]) -> str:
    text = json.dumps([settings.backend, settings.model, system, prompt, schema.__name__])
    return hashlib.sha256(text.encode()).hexdigest()


def _instructions(system: str, schema: type[M]) -> str:
    return (
        f"{system}\nAnswer with one JSON object and nothing else, matching this JSON"
        f" schema:\n{json.dumps(schema.model_json_schema())}"
    )


def _chat(
    settings: IntelligenceSettings, system: str, prompt: str, schema: type[M]
) -> tuple[str, Usage]:
    """The model's raw text and reported usage; raises what the client raises."""
    if settings.backend == "ollama":
        import ollama

        client = ollama.Client(
            host=settings.host or "http://localhost:11434", timeout=settings.timeout_s
        )
        response = client.chat(
            model=settings.model,
            messages=[
                {"role": "system", "content": _instructions(system, schema)},
                {"role": "user", "content": prompt},
            ],
            format=schema.model_json_schema(),
            options={"temperature": 0},
        )
        usage = Usage(response.prompt_eval_count, response.eval_count, response.model)
        return str(response.message.content or ""), usage
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise LookupError("ANTHROPIC_API_KEY is not set")
    import anthropic

    claude = anthropic.Anthropic(
        api_key=key,
        base_url=settings.host or os.environ.get("ANTHROPIC_BASE_URL") or None,
        timeout=settings.timeout_s,
        max_retries=0,  # a late answer is no answer: fall back instead
    )
    message = claude.messages.create(
        model=settings.model,
        max_tokens=settings.max_tokens,
        system=_instructions(system, schema),
        messages=[{"role": "user", "content": prompt}],
    )
    text = "".join(getattr(block, "text", "") for block in message.content)
    reported = message.usage
    return text, Usage(reported.input_tokens, reported.output_tokens, message.model)


def _failure(exc: Exception, settings: IntelligenceSettings) -> str:
    """Why the plain behaviour was used: it goes into reports and spans, so an endpoint
    that echoes the request's key in its error loses the key here."""
    name = type(exc).__name__
    text = redaction.redact(str(exc)).strip()
    text = text.splitlines()[0] if text else name
    if "timeout" in name.lower() or "timed out" in text.lower():
        return f"timeout: no answer within {settings.timeout_s:g}s"
    if isinstance(exc, LookupError):
        return text
    return f"{settings.backend} unavailable: {text[:200]}"


def _metered_chat(
    settings: IntelligenceSettings,
    system: str,
    prompt: str,
    schema: type[M],
    meter: Meter | None,
    purpose: str,
) -> tuple[str | None, str]:
    """The model's text, or None and why not."""
    reservation = None
    if meter is not None:
        reservation, refused = meter.admit()
        if reservation is None:
            return None, refused
    usage, text, reason = Usage(), None, ""
    try:
        text, usage = _chat(settings, system, prompt, schema)
    except Exception as exc:  # any client failure means: fall back
        reason = _failure(exc, settings)
    if meter is not None and reservation is not None:
        meter.settle(reservation, purpose, usage, ok=text is not None)
    return text, reason


_last_fallback = ""


def _fell_back(reason: str) -> None:
    """Log a fallback; the same reason again (an exhausted budget, a server that stays
    down: an agent asks at every claim) only at debug level, so it cannot flood the log."""
    global _last_fallback
    level = logging.DEBUG if reason == _last_fallback else logging.WARNING
    _last_fallback = reason
    logger.log(level, "intelligence: %s; using the plain behaviour", reason)


def _strip_fence(text: str) -> str:
    """Models like to wrap JSON in a Markdown fence even when told not to."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def ask(
    settings: IntelligenceSettings,
    system: str,
    prompt: str,
    schema: type[M],
    *,
    use_cache: bool,
    meter: Meter | None = None,
    purpose: str = "intelligence",
) -> Answer[M]:
    """The model's answer as ``schema``, or no value and the reason. With a ``meter``
    the call waits for the swarm's limits and is entered in its ledger as ``purpose``."""
    key = question_key(settings, system, prompt, schema)
    cache = Path(settings.cache_dir) / f"{key}.json"
    text: str | None = None
    cached = False
    if use_cache and settings.cache_ttl_s > 0:
        try:
            entry = json.loads(cache.read_text())
            if time.time() - float(entry["at"]) < settings.cache_ttl_s:
                text, cached = str(entry["text"]), True
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if text is None:
        text, reason = _metered_chat(settings, system, prompt, schema, meter, purpose)
        if text is None:
            _fell_back(reason)
            return Answer(None, reason, model=settings.model)
    try:
        value = schema.model_validate_json(_strip_fence(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        reason = f"invalid answer: {where}: {first['msg']}"
        _fell_back(reason)
        return Answer(None, reason, model=settings.model)
    if not cached and settings.cache_ttl_s > 0:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps({"at": time.time(), "text": text}).encode()
            write_atomic(str(cache), data, fsync=False)
        except OSError as exc:
            logger.warning("intelligence: cannot cache the answer in %s: %s", cache.parent, exc)
    return Answer(value, cached=cached, model=settings.model)
