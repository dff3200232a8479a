"""Whether a file store's files account for its whole state.

A store is its journal plus, from the second generation on, the snapshot the journal
continues from; the journal's header names its generation and earlier generations are
kept in ``journal/``. A file that is missing, emptied or older than its neighbours
would silently lose or roll back state, so opening refuses with the file's name and
how to restore it. An empty store is created only where no store file exists at all.
"""

from __future__ import annotations

import os

from orchestrator.errors import StoreError
from orchestrator.store.journal import decode
from orchestrator.store.views import MARKER, VIEW_FILES

JOURNAL = "journal.jsonl"
WORK = "work_snapshot.json"
AGENTS = "agents_snapshot.json"
ARCHIVE = "work_archive.jsonl"
HISTORY = "journal"

_RESTORE = "restore it from a backup, or move the store folder away to start an empty store"


def _history(path: str) -> list[int]:
    try:
        names = os.listdir(os.path.join(path, HISTORY))
    except (FileNotFoundError, NotADirectoryError):
        return []
    gens = []
    for name in names:
        stem = name.removeprefix("gen-").removesuffix(".jsonl")
        if name.startswith("gen-") and stem.isdigit():
            gens.append(int(stem))
    return sorted(gens)


def store_files(path: str) -> list[str]:
    """The store files present in ``path`` (relative names), oldest kind first."""
    names = (WORK, AGENTS, ARCHIVE, JOURNAL, *VIEW_FILES, MARKER)
    found = [name for name in names if os.path.isfile(_at(path, name))]
    gens = _history(path)
    found += [os.path.join(HISTORY, f"gen-{gen:06d}.jsonl") for gen in gens]
    if not gens and os.path.isdir(_at(path, HISTORY)):
        found.append(HISTORY + "/")  # made right after the first journal header
    return found


def is_store(path: str) -> bool:
    """Whether a file store was ever created in ``path`` (a read must not create one)."""
    return bool(store_files(path))


def require_fresh(path: str) -> None:
    """Called when the journal is missing: fine for a new store, else refuse."""
    others = store_files(path)
    if others:
        raise StoreError(
            f"{_at(path, JOURNAL)} is missing but the store holds {', '.join(others[:3])}:"
            f" its latest changes cannot be accounted for; {_RESTORE}"
        )


def check_generation(path: str, generation: int, journal_fd: int) -> None:
    """After reading the journal: its header, the snapshots and the history must agree."""
    journal = _at(path, JOURNAL)
    if generation <= 0:
        size = os.fstat(journal_fd).st_size
        what = "is empty" if size == 0 else "does not start with its generation header"
        raise StoreError(f"{journal} {what}; {_RESTORE}")
    if generation > 1:
        for name in (WORK, AGENTS):
            if not os.path.isfile(_at(path, name)):
                raise StoreError(
                    f"{_at(path, name)} is missing (journal generation {generation} continues"
                    f" from it); {_RESTORE}"
                )
    history = _history(path)
    if history and history[-1] == generation:
        # A compaction that died after keeping the journal in the history: the same file.
        kept = os.path.join(path, HISTORY, f"gen-{generation:06d}.jsonl")
        if os.fstat(journal_fd).st_ino == os.stat(kept).st_ino:
            return
    if history and history[-1] >= generation:
        newest = os.path.join(path, HISTORY, f"gen-{history[-1]:06d}.jsonl")
        raise StoreError(
            f"{journal} is generation {generation} but {newest} is newer: the journal was"
            f" replaced by an older copy; {_RESTORE}"
        )


def check_linked(path: str, journal_fd: int, links: int) -> None:
    """The open journal lost its last name: someone deleted it while the store was open.
    Unless it is a generation another process sealed and replaced (the reader moves on
    from its seal) whose copy in ``journal/`` was removed since: old generations are the
    operator's to prune."""
    if links == 0 and not (_sealed(journal_fd) and _replaced(path, journal_fd)):
        raise StoreError(f"{_at(path, JOURNAL)} was deleted while in use; {_RESTORE}")


def _replaced(path: str, journal_fd: int) -> bool:
    """Whether another file is in place as the journal (a seal alone is not enough: a
    compaction that died after it leaves the sealed file as the journal)."""
    try:
        return os.stat(_at(path, JOURNAL)).st_ino != os.fstat(journal_fd).st_ino
    except FileNotFoundError:
        return False


def _sealed(journal_fd: int) -> bool:
    size = os.fstat(journal_fd).st_size
    tail = os.pread(journal_fd, min(size, 4096), max(0, size - 4096))
    last = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    event = decode(last)
    return event is not None and event.get("op") == "sealed"


def _at(path: str, name: str) -> str:
    return os.path.join(path, name)
