"""Reading span files a line at a time: a 1 GB file costs one buffer, not 1 GB.

Unparsable lines (the tail of a writer killed mid-write, a hand edit) are counted and
skipped, never fatal: telemetry must not stop the tools that read it.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class ReadCounts:
    lines: int = 0
    bad_lines: int = 0


def iter_spans(
    paths: list[str] | str, since_ns: int | None = None, counts: ReadCounts | None = None
) -> Iterator[dict[str, Any]]:
    """Spans of the files in order (``.gz`` archives too), ending at or after
    ``since_ns`` when given."""
    counts = counts if counts is not None else ReadCounts()
    for path in [paths] if isinstance(paths, str) else paths:
        try:
            handle = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
        except FileNotFoundError:
            continue
        with handle:
            yield from parse_lines(handle, since_ns, counts)


def parse_lines(
    lines: Iterable[bytes], since_ns: int | None, counts: ReadCounts
) -> Iterator[dict[str, Any]]:
    loads = orjson.loads
    for line in lines:
        if not line.strip():
            continue
        counts.lines += 1
        try:
            span = loads(line)
            end = span["end_unix_nano"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            counts.bad_lines += 1
            continue
        if since_ns is None or end >= since_ns:
            yield span


def newest_span_ns(path: str) -> int | None:
    """End time of the last whole span in the file, reading only its tail."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            block = 65536
            while True:
                start = max(0, size - block)
                handle.seek(start)
                lines = handle.read(size - start).splitlines()
                for line in reversed(lines if start == 0 else lines[1:]):
                    try:
                        return int(orjson.loads(line)["end_unix_nano"])
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue
                if start == 0:
                    return None
                block *= 4
    except FileNotFoundError:
        return None
