"""The span file: ``telemetry_spans.jsonl``, one JSON object per line, many writers.

Writers append a whole batch with one ``write`` while holding an exclusive ``flock`` on
``<file>.lock``; they open the file after taking the lock, so ``swarm telemetry
archive``, which takes the same lock to rename the file, never leaves a writer
appending to the renamed copy. A write that fails part-way (disk full) is cut back to
where it started, and a tail left torn by a killed writer is closed with a newline
before the next batch: a reader sees whole lines only, or one unparsable line it skips.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator

logger = logging.getLogger(__name__)


def lock_path(spans_file: str) -> str:
    return spans_file + ".lock"


@contextlib.contextmanager
def locked(spans_file: str) -> Iterator[None]:
    """Exclusive hold on the span file (writers and the archiver)."""
    fd = os.open(lock_path(spans_file), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class SpanFileWriter:
    """Appends encoded lines to the span file; one instance per process."""

    def __init__(self, spans_file: str) -> None:
        self.path = spans_file
        self._lock_fd: int | None = None
        self._pid = os.getpid()
        self._warned = False

    def _lock(self) -> int:
        if self._lock_fd is None or self._pid != os.getpid():
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._lock_fd = os.open(
                lock_path(self.path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            self._pid = os.getpid()
        return self._lock_fd

    def append(self, data: bytes) -> bool:
        """Append ``data`` (whole lines); False, with nothing written, if it failed."""
        if not data:
            return True
        try:
            lock_fd = self._lock()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        except OSError as exc:
            return self._failed(exc)
        try:
            return self._append_locked(data)
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _append_locked(self, data: bytes) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            return self._failed(exc)
        start = 0
        try:
            start = os.fstat(fd).st_size
            if start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data  # a killed writer left half a line: close it
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            return self._failed(exc)
        finally:
            os.close(fd)
        return True

    def _failed(self, exc: OSError) -> bool:
        if not self._warned:  # once per process: a full disk must not flood the log
            logger.warning("cannot write spans to %s: %s (spans dropped)", self.path, exc)
            self._warned = True
        return False

    def close(self) -> None:
        if self._lock_fd is not None and self._pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None
