"""Journal records.

A record is one line, valid JSON, carrying a CRC-32 of its event body::

    {"c":2596996162,"e":{"op":"claim","ts":1764021349.1,"items":[{...}]}}

so a torn write (no newline) or flipped bits (checksum mismatch) are told apart from
good records without parsing the body twice.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

_PREFIX = b'{"c":'
_BODY = b',"e":'


def encode(event: dict[str, Any]) -> bytes:
    body = orjson.dumps(event)
    return b'{"c":%d,"e":%b}\n' % (zlib.crc32(body), body)


def decode(line: bytes) -> dict[str, Any] | None:
    """The event of one newline-terminated line, or None if the line is corrupt."""
    if not line.startswith(_PREFIX) or not line.endswith(b"}\n"):
        return None
    split = line.find(_BODY, len(_PREFIX))
    if split < 0:
        return None
    body = line[split + len(_BODY) : -2]
    try:
        crc = int(line[len(_PREFIX) : split])
    except ValueError:
        return None
    if zlib.crc32(body) != crc:
        return None
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
