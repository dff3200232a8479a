"""The work listing the API pages through, kept in list-work's order as the store
changes, so that a page of 100 out of 100,000 items does not sort 100,000 items.

Where the store's change reader has ``whole_records`` (the file store's operation log
carries each changed item, whole or its changed fields: ``journal.item_version`` reads
both), the listing is built once from ``list_work`` and then follows the log, moving
only the items that changed; a new log generation (``gen``: the file store's
compaction, which also archives finished items) rebuilds it. Other stores are not
followed: PostgreSQL answers each page in SQL (``store.base.page_work``).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.records import WorkItem, list_order
from orchestrator.store import journal

if TYPE_CHECKING:
    from orchestrator.store.base import Store
    from orchestrator.store.changes import ChangeReader

Key = tuple[int, float, str]
_key = list_order  # list-work's order; the id, last, finds the item


class Listing:
    def __init__(self) -> None:
        self._reader: ChangeReader | None = None
        self._items: dict[str, WorkItem] = {}
        self._live: list[Key] = []  # sorted keys of unfinished items
        self._done: list[Key] = []  # sorted keys of finished ones
        self.counts: Counter[str] = Counter()

    # -- keeping up with the store ------------------------------------------------------

    def refresh(self, store: Store) -> bool:
        """Bring the listing up to date; False when this backend cannot be followed
        (the caller lists the store itself)."""
        from orchestrator.store.changes import reader_for

        if self._reader is None:
            reader = reader_for(store)
            if not reader.whole_records:
                reader.close()
                return False
            self._rebuild(store, reader)
            return True
        # Leases that ran out are changes too: have them logged now.
        self._reader.sweep()
        generation = self._reader.gen
        changes = self._reader.poll()
        if self._reader.gen != generation:
            self._rebuild(store, self._reader)
            return True
        for change in changes:
            for raw in change.items:
                item = journal.item_version(raw, self._items.get(raw["work_item_id"]))
                if item is not None:
                    self._put(item)
        return True

    def _rebuild(self, store: Store, reader: ChangeReader) -> None:
        # The position first: a change made while listing is applied again (records set
        # values, so that changes nothing).
        reader.seek_end()
        self._reader = reader
        items = store.list_work(include_terminal=True)
        self._items = {i.work_item_id: i for i in items}
        self._live = [_key(i) for i in items if not i.terminal]
        self._done = [_key(i) for i in items if i.terminal]
        self.counts = Counter(str(i.status) for i in items)

    def _put(self, item: WorkItem) -> None:
        old = self._items.get(item.work_item_id)
        if old is not None:
            self._drop(old)
        self._items[item.work_item_id] = item
        bisect.insort(self._done if item.terminal else self._live, _key(item))
        self.counts[str(item.status)] += 1

    def _drop(self, item: WorkItem) -> None:
        keys = self._done if item.terminal else self._live
        key = _key(item)
        at = bisect.bisect_left(keys, key)
        if at < len(keys) and keys[at] == key:
            del keys[at]
        self.counts[str(item.status)] -= 1
        if not self.counts[str(item.status)]:
            del self.counts[str(item.status)]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def total(self, include_terminal: bool) -> int:
        return len(self._items) if include_terminal else len(self._live)

    def ordered(self, include_terminal: bool) -> Iterator[WorkItem]:
        """Items in list-work's order, lazily: a page costs its offset plus its size."""
        keys: Iterator[Key] = (
            heapq.merge(self._live, self._done) if include_terminal else iter(self._live)
        )
        items = self._items
        return (items[key[2]] for key in keys)

    def page(self, include_terminal: bool, offset: int, limit: int) -> list[WorkItem]:
        return list(itertools.islice(self.ordered(include_terminal), offset, offset + limit))

    def snapshot(self) -> list[Any]:
        return list(self._items.values())
