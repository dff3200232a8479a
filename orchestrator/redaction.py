"""Secrets out of error text: the one place that knows what a secret is.

An endpoint may echo a request's ``Authorization`` or ``x-api-key`` in its error
message, and error text is stored (journal, result files), logged and exported as
spans. Every value this process holds that is a configured secret is replaced by
``[redacted]`` before that: API keys, the header values of ``OTEL_EXPORTER_OTLP_*
HEADERS``, and anything in a variable named ``*_KEY``, ``*_TOKEN``, ``*_SECRET`` or
``*_PASSWORD``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import orjson

REDACTED = "[redacted]"
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_API_KEY")
# Shorter values ("1", "true") would blank out ordinary words.
_MIN_LEN = 6


def _header_values(raw: str) -> list[str]:
    """``k1=v1,k2=Bearer v2``: each value, and the token after an auth scheme."""
    from urllib.parse import unquote  # only with OTLP headers: each CLI call would pay ~2 ms

    values = []
    for pair in raw.split(","):
        _, _, value = pair.partition("=")
        value = unquote(value).strip()
        values.append(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic", "token"):
            values.append(token.strip())
    return values


# The environment the secrets were last read from, as CPython holds it (bytes to bytes),
# with what was found in it, in one tuple (threads swap it whole): every agent item and
# log line asks; reading them costs ~25 µs with 35 variables, comparing ~1 µs.
_last_read: tuple[dict[Any, Any], tuple[str, ...]] | None = None


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets of this process, longest first (so a key is replaced whole before
    any secret that is a part of it)."""
    global _last_read
    if environ is not None:
        return _secrets_in(environ)
    current = getattr(os.environ, "_data", None)
    if not isinstance(current, dict):  # not CPython's mapping: read it every time
        return _secrets_in(os.environ)
    last = _last_read
    if last is None or last[0] != current:
        copy = dict(current)  # read from the copy: what is kept is what was read
        decode_name, decode_value = os.environ.decodekey, os.environ.decodevalue
        found = _secrets_in({decode_name(k): decode_value(v) for k, v in copy.items()})
        last = _last_read = (copy, tuple(found))
    return list(last[1])


def _secrets_in(env: Mapping[str, str]) -> list[str]:
    found: set[str] = set()
    for name, value in env.items():
        upper = name.upper()
        if upper.startswith("OTEL_EXPORTER_OTLP") and upper.endswith("HEADERS"):
            found.update(_header_values(value))
        elif upper.endswith(_SECRET_SUFFIXES):
            found.add(value.strip())
    return sorted((v for v in found if len(v) >= _MIN_LEN), key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret of this process (or of ``secrets``) replaced by
    ``[redacted]``."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_json(data: bytes) -> bytes:
    """Serialised JSON (span lines) with every secret, as JSON spells it, replaced."""
    for secret in secret_values():
        spelled = orjson.dumps(secret)[1:-1]
        if spelled in data:
            data = data.replace(spelled, REDACTED.encode())
    return data


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """Strings inside JSON-like values (a result's output or details), redacted. The
    secrets are read from the environment once per call, not once per string."""
    if secrets is None:
        secrets = secret_values()
    if not secrets:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    return value


class RedactingFilter(logging.Filter):
    """On a handler: the formatted message and traceback of every record, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
