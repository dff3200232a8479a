"""The coordination store: one contract (``base``), several backends."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.config import StoreConfig
    from orchestrator.store.file import FileStore


def open_store(path: str | os.PathLike[str], settings: StoreConfig | None = None) -> FileStore:
    """Open the store at ``path`` with the ``[store]`` settings of swarm.toml."""
    from orchestrator.store.file import FileStore

    if settings is None:
        return FileStore(path)
    return FileStore(
        path,
        durability=settings.durability,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        archive_after_s=settings.archive_after_s,
        compact_bytes=int(settings.compact_mb * (1 << 20)),
    )
