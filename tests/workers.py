"""Functions run in child processes by the concurrency and crash tests (spawn-safe)."""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event, Semaphore
from typing import Any

from orchestrator.records import WorkItem
from orchestrator.store import locking
from orchestrator.store.file import FileStore


def claim_and_complete(store_path: str, agent_id: str, out_path: str, start: Event) -> None:
    """Drain the queue: claim, complete, record what this process completed."""
    store = FileStore(store_path)
    done: list[str] = []
    start.wait()
    while (item := store.claim(agent_id)) is not None:
        store.complete(item.work_item_id, "success", 1, result=os.getpid(), agent_id=agent_id)
        done.append(item.work_item_id)
    with open(out_path, "w") as fh:
        fh.write("\n".join(done))
    store.close()


def pg_drain(
    dsn: str,
    schema: str,
    agent_id: str,
    out_path: str,
    start: Event,
    lease_s: float = 60.0,
    ready: Semaphore | None = None,
) -> None:
    """Drain a PostgreSQL queue until nothing is pending or held, recording completions.
    Survives the connection being killed under it (the store retries). Releases
    ``ready`` once its store is open, then waits for ``start``."""
    from orchestrator.store.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema, lease_s=lease_s)
    done: list[str] = []
    if ready is not None:
        ready.release()
    start.wait()
    while True:
        item = store.claim(agent_id)
        if item is None:
            if not store.list_work(include_terminal=False):
                break
            time.sleep(0.1)  # ghost claims from a lost reply return at lease end
            continue
        store.complete(item.work_item_id, "success", agent_id=agent_id)
        done.append(item.work_item_id)
    with open(out_path, "w") as fh:
        fh.write("\n".join(done))
    store.close()


def enqueue_keys(
    target: str, schema: str | None, keys: list[str], seed: int, out_path: str, start: Event
) -> None:
    """Enqueue one item per key, in batches and in an order of this process's own, twice;
    record per key and pass the id the store answered and whether this process added it."""
    from orchestrator.store.postgres import PostgresStore

    store = PostgresStore(target, schema=schema) if schema else FileStore(target)
    order = list(keys)
    random.Random(seed).shuffle(order)
    lines: list[str] = []
    start.wait()
    for attempt in range(2):
        for begin in range(0, len(order), 7):
            batch = order[begin : begin + 7]
            got = store.add_many([WorkItem("", "t", f"item {key}", key=key) for key in batch])
            lines += [
                f"{attempt} {key} {work_id} {int(new)}"
                for key, work_id, new in zip(batch, got, got.new, strict=True)
            ]
    with open(out_path, "w") as fh:
        fh.write("\n".join(lines))
    store.close()


def pg_migrate(dsn: str, schema: str, start: Event) -> None:
    from orchestrator.store.postgres import PostgresStore

    start.wait()
    PostgresStore(dsn, schema=schema).close()


def claim_and_hang(store_path: str, agent_id: str, count: int, lease_s: float) -> None:
    """Claim ``count`` items, say so on stdout, then hang until killed."""
    store = FileStore(store_path, lease_s=lease_s)
    for _ in range(count):
        store.claim(agent_id)
    print("claimed", flush=True)
    time.sleep(600)


def add_forever(store_path: str) -> None:
    """Append items as fast as possible, printing each id once it is acknowledged."""
    store = FileStore(store_path, compact_bytes=64_000)
    n = 0
    while True:
        n += 1
        work_id = store.add_work(
            WorkItem(work_item_id="", work_type="t", description="x" * (n % 300))
        )
        sys.stdout.write(work_id + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    {
        "claim_and_hang": lambda: claim_and_hang(
            sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        ),
        "add_forever": lambda: add_forever(sys.argv[2]),
    }[sys.argv[1]]()


@dataclass
class SpanWriters:
    """Processes running ``write_spans``; ``start`` and ``stop`` must live as long as
    they start up (they unpickle them from here). ``written[n]`` is how many spans
    process ``n`` wrote, set when it ends."""

    procs: list[BaseProcess]
    start: Event
    stop: Event
    written: Any


def start_span_writers(
    spans_file: str,
    processes: int,
    count: int,
    pause_s: float = 0.001,
    until_stopped: bool = False,
) -> SpanWriters:
    """``processes`` spawned ``write_spans`` processes, released together; with
    ``until_stopped`` each goes on past ``count`` spans until ``stop`` is set."""
    ctx = multiprocessing.get_context("spawn")
    start, stop = ctx.Event(), ctx.Event()
    written = ctx.Array("q", processes)
    procs = [
        ctx.Process(
            target=write_spans,
            args=(spans_file, count, start, pause_s, stop if until_stopped else None, written, n),
        )
        for n in range(processes)
    ]
    for proc in procs:
        proc.start()
    start.set()
    return SpanWriters(procs, start, stop, written)


def write_spans(
    spans_file: str,
    count: int,
    start: Event,
    pause_s: float = 0.001,
    stop: Event | None = None,
    written: Any = None,
    slot: int = 0,
) -> None:
    """Emit ``count`` spans (and more until ``stop`` is set, when given) with a large
    attribute through the real exporter, in batches every 50 ms, pausing ``pause_s``
    every 100 spans; record the number in ``written[slot]``."""
    from orchestrator.telemetry import tracing
    from orchestrator.telemetry.settings import TelemetrySettings

    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    tracing.configure("agent", TelemetrySettings(spans_file=spans_file))
    start.wait()
    filler = "x" * 3000  # lines bigger than a pipe buffer's atomic write
    index = 0
    while index < count or (stop is not None and not stop.is_set()):
        with tracing.tracer().start_as_current_span("test.op") as span:
            span.set_attribute("test.pid", os.getpid())
            span.set_attribute("test.index", index)
            span.set_attribute("test.filler", filler)
        if index % 100 == 0:
            time.sleep(pause_s)
        index += 1
    tracing.shutdown()
    if written is not None:
        written[slot] = index


def count_under_lock(path: str, rounds: int, patient: bool) -> None:
    """Read-modify-write a counter under the store lock, reading it while waiting as the
    store reads its journal: a lost update means two holders at once."""
    locking.wait_patiently(patient)
    lock = locking.StoreLock(path + ".lock", timeout_s=0 if not patient else 30)
    counter = path + ".count"

    def peek() -> None:
        with open(counter, "rb") as handle:
            handle.read()

    for _ in range(rounds):
        lock.acquire(peek)
        with open(counter, "r+b") as handle:
            value = int(handle.read() or b"0")
            handle.seek(0)
            handle.write(b"%d" % (value + 1))
            handle.truncate()
        lock.release()
    lock.close()
