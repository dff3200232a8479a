"""The coordination store: one contract (``base``), several backends.

This package knows records and files, nothing above them: spans are added around a
backend one layer up (``orchestrator.wiring``), and swarm.toml's ``[store]`` table is
turned into ``StoreOptions`` by the configuration.
"""

from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING, NamedTuple

from orchestrator.locations import is_url

if TYPE_CHECKING:
    from orchestrator.store.base import Store


# How stale SwarmSH's JSON views (store/views.py) may get while processes work.
DEFAULT_VIEWS_INTERVAL_S = 1.0
# A long-lived process runs a full garbage collection once per this many collections of
# the middle generation (CPython's default: 10).
FULL_COLLECTION_EVERY = 100


def long_lived_process() -> None:
    """Set this process up to keep a store open for long (the supervisor, an agent).

    It waits past FLOCK_TIMEOUT for the file store's lock, logging, instead of failing.
    And it runs CPython's full garbage collections a tenth as often: each one scans
    every object the process holds, and one run by the lock holder holds up every
    process in line. That cost 60 ms at 100,000 items when every process kept a
    replica of the store (bench/RESULTS.md); with the state in SQLite a process holds
    far fewer objects, and the setting stays as a cheap guard. Items hold no reference
    cycles: only what a full collection alone can free (cycles that outlived two
    younger collections) waits longer.
    """
    from orchestrator.store import locking

    locking.wait_patiently()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


class StoreOptions(NamedTuple):
    """How a backend behaves; each backend reads the options that concern it. (A
    NamedTuple: a frozen dataclass compiles its methods in every process at import.)"""

    lease_s: float = 60.0
    max_attempts: int = 3
    durability: str = "os"  # file store: "os" or "fsync"
    archive_after_s: float = 3600.0  # file store
    compact_bytes: int = 4 << 20  # file store
    schema: str = "swarmsh"  # PostgreSQL store
    # file store: SwarmSH's JSON views refreshed at most this often (None: off, 0: always)
    views_interval_s: float | None = DEFAULT_VIEWS_INTERVAL_S


def open_backend(target: str | os.PathLike[str], options: StoreOptions | None = None) -> Store:
    """The backend for ``target``: a directory (file store) or a PostgreSQL URL.
    Backends are imported on demand."""
    options = options or StoreOptions()
    if is_url(target):
        from orchestrator.store.postgres import PostgresStore

        return PostgresStore(
            str(target),
            schema=options.schema,
            lease_s=options.lease_s,
            max_attempts=options.max_attempts,
        )
    from orchestrator.store.file import FileStore

    return FileStore(
        target,
        durability=options.durability,
        lease_s=options.lease_s,
        max_attempts=options.max_attempts,
        archive_after_s=options.archive_after_s,
        compact_bytes=options.compact_bytes,
        views_interval_s=options.views_interval_s,
    )
