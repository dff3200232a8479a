"""Memory a process holds for the file store's state: every agent of a swarm on the
file store keeps every live item, so this is paid once per agent.

One store of ``--items`` items, each enqueued by its own operation (one journal record
per item, as a swarm writes them). A fresh process opens it twice over: replaying the
journal, and from the snapshot a compaction wrote (the same items, read an element
at a time). Printed: RSS growth of each, and the replayed/snapshot ratio. RSS keeps a
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
        replayed = rss_mb(path)
        store.compact()
        store.close()
        snapshot = rss_mb(path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = (
        "| items | RSS growth, journal replayed | RSS growth, from the snapshot | ratio |\n"
        "|---|---|---|---|\n"
        f"| {args.items:,} | {replayed:.0f} MB | {snapshot:.0f} MB | {replayed / snapshot:.2f}x |"
    )
    print(table)
    if args.write_results:
        command = invocation()
        write_section(
            "memory_bench",
            "## Store: memory of the state each process holds\n\n"
            f"Command: `{command}` (via `make bench`), {time.strftime('%Y-%m-%d')}."
            " A fresh process opens a store whose items were each enqueued by their own"
            " operation: replaying the journal, then from the snapshot a compaction wrote"
            " (read an element at a time). RSS keeps a load's peak.\n\n" + table,
        )


if __name__ == "__main__":
    main()
