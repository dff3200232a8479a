"""The file store's operation log, read from a position: the journal of the current
generation and the earlier ones kept in ``journal/``.

Positions are ``<generation>.<byte offset of a record>``. The journal is only appended
to, and a compaction seals a generation (a last ``sealed`` record) before it links it
into ``journal/`` and renames a new journal into place, so a reader holding the old file
open reads to the seal and then moves on; it never takes the store's lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from orchestrator.store import journal
from orchestrator.store.changes import Change

JOURNAL = "journal.jsonl"
HISTORY = "journal"
_MAX_READ = 4 << 20  # bytes per poll: a reader far behind catches up in steps


class FileChanges:
    poll_s = 0.02  # one fstat per poll
    whole_records = True  # the journal logs each changed item (whole, or its changes)

    def __init__(self, path: str, sweep: Callable[[], object] | None = None) -> None:
        self.path = path
        self._sweep = sweep
        self.gen = 0
        self.offset = 0
        self.gap = False
        self._fd: int | None = None

    def _history(self, gen: int) -> str:
        return os.path.join(self.path, HISTORY, f"gen-{gen:06d}.jsonl")

    def _current(self) -> tuple[int, int] | None:
        """The generation of journal.jsonl and an fd on it, or None (no store yet)."""
        try:
            fd = os.open(os.path.join(self.path, JOURNAL), os.O_RDONLY)
        except FileNotFoundError:
            return None
        head = os.pread(fd, 4096, 0)
        end = head.find(b"\n")
        header = journal.decode(head[: end + 1]) if end >= 0 else None
        if header is None or header.get("op") != "generation":
            os.close(fd)
            return None
        return int(header["gen"]), fd

    def _open(self) -> bool:
        """Open the file of ``self.gen``; when it is gone (removed from ``journal/``),
        move to the start of the next one there is, and set ``gap``."""
        if self._fd is not None:
            return True
        current = self._current()
        if current is None:
            return False
        gen, fd = current
        if gen == self.gen:
            self._fd = fd
            return True
        if gen < self.gen:  # the next generation is not in place yet
            os.close(fd)
            return False
        for kept in range(self.gen, gen):
            try:
                self._fd = os.open(self._history(kept), os.O_RDONLY)
            except FileNotFoundError:
                continue
            os.close(fd)
            break
        else:
            kept, self._fd = gen, fd
        if kept != self.gen:
            # Generation 0 is "before the store existed": nothing was there to miss.
            self.gap = self.gap or self.gen > 0
            self.gen, self.offset = kept, 0
        return True

    def seek_end(self) -> None:
        self.close()
        current = self._current()
        if current is None:
            self.gen, self.offset = 0, 0
            return
        self.gen, fd = current
        size = os.fstat(fd).st_size
        tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
        # Only whole records: a write in flight is read on the next poll.
        self.offset = size - len(tail) + tail.rfind(b"\n") + 1
        self._fd = fd

    def seek(self, pos: str) -> None:
        try:
            gen, offset = (int(part) for part in pos.split("."))
        except ValueError:
            self.seek_end()
            self.gap = True
            return
        self.close()
        self.gen, self.offset = gen, offset
        current = self._current()
        if current is None:  # no store now: whatever it will hold is new
            self.gen, self.offset = 0, 0
            return
        now, fd = current
        # A position this store never had (it was recreated, or the client is from
        # another one) would wait forever: read the current generation from its start.
        if gen > now or (gen == now and offset > os.fstat(fd).st_size):
            self.gen, self.offset, self._fd, self.gap = now, 0, fd, True
            return
        os.close(fd)
        try:
            size = os.stat(self._history(gen)).st_size
        except FileNotFoundError:
            return  # the current generation, or one no longer kept: _open moves on
        if gen < now and offset >= size:  # past the seal of a kept generation
            self.gen, self.offset = gen + 1, 0

    def sweep(self) -> None:
        """Have leases that ran out logged (they are changes too)."""
        if self._sweep is not None:
            self._sweep()

    def poll(self) -> list[Change]:
        changes: list[Change] = []
        while self._open():
            assert self._fd is not None
            size = os.fstat(self._fd).st_size
            if size <= self.offset:
                return changes
            data = os.pread(self._fd, min(size - self.offset, _MAX_READ), self.offset)
            pos = 0
            sealed = False
            while (end := data.find(b"\n", pos)) >= 0:
                event = journal.decode(data[pos : end + 1])
                here = f"{self.gen}.{self.offset + pos}"
                pos = end + 1
                if event is None:
                    continue  # corrupt: the store skips it too
                op = str(event.get("op"))
                if op == "sealed":
                    sealed = True
                    break
                if op != "generation":
                    changes.append(_change(here, op, event))
            self.offset += pos
            if not sealed:
                return changes
            self.close()
            self.gen, self.offset = self.gen + 1, 0
            if changes:  # the next poll opens the next generation: a gap comes before it
                return changes
        return changes

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _change(pos: str, op: str, event: dict[str, Any]) -> Change:
    return Change(
        pos=pos,
        op=op,
        ts=float(event.get("ts", 0.0)),
        items=list(event.get("items", ())),
        agents=list(event.get("agents", ())),
        gone=list(event.get("gone", ())),
    )
