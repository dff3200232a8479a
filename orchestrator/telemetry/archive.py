"""Rotating the span file into ``telemetry_archive/`` and pruning old archives.

Rotation takes the writers' lock (``spanfile.locked``), renames the file into the
archive folder and lets go: writers open the file only while holding that lock, so
none can still be appending to the renamed copy. Compression then runs without the
lock, to a temporary name first; a crash before it finishes leaves the plain ``.jsonl``
in the archive folder, which the next run compresses. No span is lost or torn.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import StorageFull, StoreError
from orchestrator.telemetry.spanfile import locked

if TYPE_CHECKING:
    from orchestrator.telemetry.settings import TelemetrySettings

PREFIX = "telemetry_spans-"


@dataclass
class ArchiveResult:
    rotated: str | None = None  # the new archive, if the span file was rotated
    reason: str = ""
    lines: int = 0
    bytes: int = 0
    compressed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def count_lines(path: str, stop_after: int | None = None) -> int:
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            if stop_after is not None and lines >= stop_after:
                break
    return lines


def _due(path: str, settings: TelemetrySettings, force: bool) -> str:
    """Why the span file should be rotated now ('' = it should not)."""
    size = os.path.getsize(path)
    if size == 0:
        return ""
    if force:
        return "forced"
    if size >= settings.max_size_mb * (1 << 20):
        return f"size {size / (1 << 20):.1f} MB >= TELEMETRY_MAX_SIZE_MB={settings.max_size_mb:g}"
    if settings.archive_lines and count_lines(path, settings.archive_lines) >= (
        settings.archive_lines
    ):
        return f"over TELEMETRY_ARCHIVE_LINES={settings.archive_lines}"
    return ""


def archive(
    settings: TelemetrySettings, *, force: bool = False, now: float | None = None
) -> ArchiveResult:
    """Rotate if due, compress what a crash left plain, prune by age. One archiver at
    a time (cron and a hand-run command may overlap)."""
    try:
        fd = os.open(settings.spans_file + ".archive.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"cannot archive spans: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _archive(settings, force, time.time() if now is None else now)
    except OSError as exc:
        error = StorageFull if exc.errno == errno.ENOSPC else StoreError
        raise error(
            f"cannot archive spans: {exc.strerror or exc} ({exc.filename or settings.archive_dir});"
            " no span was lost: an uncompressed archive is compressed by the next run"
        ) from None
    finally:
        os.close(fd)


def _archive(settings: TelemetrySettings, force: bool, now: float) -> ArchiveResult:
    result = ArchiveResult()
    archive_dir = Path(settings.archive_dir)
    spans = settings.spans_file
    if os.path.exists(spans):
        result.reason = _due(spans, settings, force)
    if result.reason:
        archive_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        target = archive_dir / f"{PREFIX}{stamp}-{os.getpid()}.jsonl"
        with locked(spans):
            result.bytes = os.path.getsize(spans)  # the file as rotated, to the last byte
            os.replace(spans, target)
        result.lines = count_lines(str(target))
        result.rotated = str(target) + ".gz"
    if archive_dir.is_dir():
        for plain in sorted(archive_dir.glob(f"{PREFIX}*.jsonl")):
            result.compressed.append(compress(plain))
        cutoff = now - settings.retention_days * 86400
        for old in sorted(archive_dir.glob(f"{PREFIX}*.jsonl.gz")):
            if old.stat().st_mtime < cutoff:
                old.unlink()
                result.deleted.append(str(old))
    return result


def compress(plain: Path) -> str:
    """``x.jsonl`` -> ``x.jsonl.gz``, atomically (a partial .gz never has the final name)."""
    final = plain.with_name(plain.name + ".gz")
    partial = plain.with_name(plain.name + ".gz.partial")
    try:
        with open(plain, "rb") as source, gzip.open(partial, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        with open(partial, "rb") as done:
            os.fsync(done.fileno())
    except OSError:
        partial.unlink(missing_ok=True)  # the plain file stays: nothing is lost
        raise
    os.replace(partial, final)
    plain.unlink()
    return str(final)


def archives(settings: TelemetrySettings) -> list[str]:
    """Archived span files, oldest first (``swarm telemetry stats --archives``)."""
    folder = Path(settings.archive_dir)
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.glob(f"{PREFIX}*.jsonl.gz"))]
