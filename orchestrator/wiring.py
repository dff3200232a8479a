"""Opening a store as every command, supervisor and agent uses it: the backend for the
target, wrapped so that each operation is an OpenTelemetry span.

It sits one layer above the store and the telemetry, so that neither imports the other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orchestrator.locations import is_url
from orchestrator.store import StoreOptions, open_backend

if TYPE_CHECKING:
    from orchestrator.config import StoreConfig
    from orchestrator.store.base import Store


def open_store(
    target: str | os.PathLike[str],
    settings: StoreConfig | None = None,
    *,
    one_shot: bool = False,
) -> Store:
    """The store at ``target`` with the ``[store]`` settings of swarm.toml, recording its
    operations as spans (a no-op until tracing is configured in this process).

    ``one_shot``: a CLI command, whose change SwarmSH's scripts read from the JSON views
    as soon as it returns: the views are written after every change, not at intervals."""
    from orchestrator.telemetry.traced_store import TracedStore

    options = settings.options() if settings is not None else StoreOptions()
    if one_shot and options.views_interval_s is not None:
        options = options._replace(views_interval_s=0.0)
    backend = open_backend(target, options)
    return TracedStore(backend, "postgres" if is_url(target) else "file")
