"""The coordination store: one contract (``base``), several backends."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.config import StoreConfig
    from orchestrator.store.base import Store

URL_PREFIXES = ("postgresql://", "postgres://")


def is_url(target: str | os.PathLike[str]) -> bool:
    return str(target).startswith(URL_PREFIXES)


def open_store(target: str | os.PathLike[str], settings: StoreConfig | None = None) -> Store:
    """Open the store at ``target``: a directory (file store) or a PostgreSQL URL,
    with the ``[store]`` settings of swarm.toml, recording its operations as spans
    (``orchestrator.telemetry``). Backends are imported on demand."""
    from orchestrator.telemetry.traced_store import TracedStore

    backend = "postgres" if is_url(target) else "file"
    return TracedStore(open_backend(target, settings), backend)


def open_backend(target: str | os.PathLike[str], settings: StoreConfig | None = None) -> Store:
    """The bare backend, without spans (benchmarks compare against it)."""
    if is_url(target):
        from orchestrator.store.postgres import PostgresStore

        if settings is None:
            return PostgresStore(str(target))
        return PostgresStore(
            str(target),
            schema=settings.schema_name,
            lease_s=settings.lease_s,
            max_attempts=settings.max_attempts,
        )
    from orchestrator.store.file import FileStore

    if settings is None:
        return FileStore(target)
    return FileStore(
        target,
        durability=settings.durability,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        archive_after_s=settings.archive_after_s,
        compact_bytes=int(settings.compact_mb * (1 << 20)),
    )
