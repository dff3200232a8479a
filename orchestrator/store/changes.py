"""Reading the store's operation log from a position onwards: what changed since a
client last looked, without listing the whole store (the HTTP API's event stream).

Read-only, and apart from the backends' write paths: each backend has a reader in its
own module (``file_changes``, ``pg_changes``) over the log it already keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.store.base import Store


@dataclass(slots=True)
class Change:
    """One record of the operation log: ``pos`` orders it and resumes after it; the
    items and agents carry whatever the backend's log keeps of each (the file journal:
    whole records; PostgreSQL: id, status, holder)."""

    pos: str
    op: str
    ts: float
    items: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class ChangeReader(Protocol):
    poll_s: float  # how often polling pays: what one poll costs this backend
    # Whether each change's items carry enough (whole records, or their changed fields
    # over the previous version: ``journal.item_version``) to keep a listing of the
    # store up to date from the log alone, after one ``list_work``.
    whole_records: bool
    # Moves when the log starts over (a new journal generation, which archives finished
    # items): a listing kept from it is rebuilt. Constant where the log never does.
    gen: int
    # Set by ``seek`` or ``poll`` when changes may have been skipped: a position this
    # log no longer holds what followed of, or never had. The caller tells its client
    # (who must re-read the state) and clears it.
    gap: bool

    def seek_end(self) -> None:
        """Start at the end of the log: only changes from now on."""
        ...

    def seek(self, pos: str) -> None:
        """Start at ``pos``: the record there is read again (a caller resuming inside a
        record skips what it had); where the log cannot resume it (``gap``), at the
        nearest place it can read from."""
        ...

    def poll(self) -> list[Change]:
        """The changes appended since the last poll (bounded; call again for more)."""
        ...

    def sweep(self) -> None:
        """Have the backend log changes that only time made (leases run out) where
        it does not do so by itself."""
        ...

    def close(self) -> None: ...


def reader_for(store: Store) -> ChangeReader:
    """A reader of ``store``'s operation log (the traced wrapper is looked through)."""
    backend: Any = getattr(store, "inner", store)
    if hasattr(backend, "dsn"):
        from orchestrator.store.pg_changes import PgChanges

        return PgChanges(backend)
    from orchestrator.store.file_changes import FileChanges

    return FileChanges(backend.path, sweep=backend.sweep)
