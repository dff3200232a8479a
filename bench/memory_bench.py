"""Memory a process takes to open the file store: paid once per agent.

One store of ``--items`` items, each enqueued by its own operation (one journal record
per item, as a swarm writes them). A fresh process opens it and runs one operation:
with its database index (``state.sqlite``, how every process opens a store now), and
with the index deleted, which makes the process build it again from the journal, then
from the snapshot a compaction wrote (how a store of an earlier version opens the first
time, once, and what an earlier version's every process held: each kept every item in
memory). Printed: RSS growth of each, and each rebuild's against the open. RSS keeps a
load's peak (freed small objects stay in the process for reuse).

    python -m bench.memory_bench [--items 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time

import psutil

from bench.common import invocation, write_section
from bench.store_bench import _item


def _rss_after_open(path: str, queue: multiprocessing.Queue[float]) -> None:
    from orchestrator.store.file import FileStore

    before = psutil.Process().memory_info().rss
    store = FileStore(path, compact_bytes=1 << 40)
    store.list_agents()  # loads the state
    queue.put((psutil.Process().memory_info().rss - before) / 1e6)
    store.close()


def _drop_index(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(os.path.join(path, "state.sqlite" + suffix))
        except FileNotFoundError:
            pass


def rss_mb(path: str) -> float:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[float] = ctx.Queue()
    process = ctx.Process(target=_rss_after_open, args=(path, queue))
    process.start()
    grown = queue.get(timeout=600)
    process.join()
    return grown


def main() -> None:
    from orchestrator.store.file import FileStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="swarm-memory-bench-")
    try:
        path = os.path.join(root, "store")
        store = FileStore(path, compact_bytes=1 << 40)
        for n in range(args.items):
            store.add_work(_item(n))
        store.close()
        indexed = rss_mb(path)
        _drop_index(path)
        replayed = rss_mb(path)
        store = FileStore(path, compact_bytes=1 << 40)
        store.compact()
        store.close()
        _drop_index(path)
        snapshot = rss_mb(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = (
        "| items | RSS growth, opened with its index | rebuilt from the journal"
        " | rebuilt from the snapshot |\n"
        "|---|---|---|---|\n"
        f"| {args.items:,} | {indexed:.0f} MB | {replayed:.0f} MB ({replayed / indexed:.0f}x)"
        f" | {snapshot:.0f} MB ({snapshot / indexed:.0f}x) |"
    )
    print(table)
    if args.write_results:
        command = invocation()
        write_section(
            "memory_bench",
            "## Store: memory of the state each process holds\n\n"
            f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')}."
            " A fresh process opens a store whose items were each enqueued by their own"
            " operation and runs one operation: with the store's index, and with the index"
            " deleted, rebuilt from the journal, then from the snapshot a compaction wrote"
            " (what each process of an earlier version held). RSS keeps a load's peak.\n\n" + table,
        )


if __name__ == "__main__":
    main()
