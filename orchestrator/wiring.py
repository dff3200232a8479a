"""Opening a store as every command, supervisor and agent uses it: the backend for the
target, wrapped so that each operation is an OpenTelemetry span.

It sits one layer above the store and the telemetry, so that neither imports the other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orchestrator.locations import is_url
from orchestrator.store import open_backend

if TYPE_CHECKING:
    from orchestrator.config import StoreConfig
    from orchestrator.store.base import Store


def open_store(target: str | os.PathLike[str], settings: StoreConfig | None = None) -> Store:
    """The store at ``target`` with the ``[store]`` settings of swarm.toml, recording its
    operations as spans (a no-op until tracing is configured in this process)."""
    from orchestrator.telemetry.traced_store import TracedStore

    backend = open_backend(target, settings.options() if settings is not None else None)
    return TracedStore(backend, "postgres" if is_url(target) else "file")
