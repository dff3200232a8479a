"""What the benchmarks share: running N measuring processes from one start signal, and
rewriting their own section of bench/RESULTS.md."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")


def run_processes(
    target: Callable[..., None],
    args: Callable[[int, Any, Any, str], tuple[Any, ...]],
    procs: int,
    folder: str,
) -> tuple[float, list[int]]:
    """Start ``procs`` spawned processes ``target(*args(i, ready, go, out))``; each
    releases ``ready`` once warmed up, waits for ``go``, measures, and writes its
    latencies (ns, space separated) to ``out``. Return (seconds, sorted latencies)."""
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    outs = [os.path.join(folder, f"lat{i}") for i in range(procs)]
    workers = [ctx.Process(target=target, args=args(i, ready, go, outs[i])) for i in range(procs)]
    for w in workers:
        w.start()
    unready = procs
    while unready:
        if ready.acquire(timeout=1.0):
            unready -= 1
            continue
        # A process that died warming up never releases ``ready``: fail, do not hang.
        exited = [w for w in workers if w.exitcode is not None]
        if exited:
            for w in workers:
                w.kill()
            raise RuntimeError(
                f"a measuring process exited with code {exited[0].exitcode} before it was ready"
                " (its traceback is above)"
            )
    started = time.perf_counter()
    go.set()
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a measuring process failed with exit code {w.exitcode}")
    elapsed = time.perf_counter() - started
    return elapsed, sorted(int(x) for out in outs for x in Path(out).read_text().split())


def prefill_file_store(path: str, count: int) -> None:
    """``count`` pending items in a (new) file store at ``path``, in batches."""
    from orchestrator.records import WorkItem
    from orchestrator.store.file import FileStore

    store = FileStore(path)
    for start in range(0, count, 5000):
        store.add_many(
            [
                WorkItem(work_item_id=f"w{n}", work_type="bench", description="benchmark item")
                for n in range(start, min(count, start + 5000))
            ]
        )
    store.close()


def percentile_ms(sorted_ns: list[int], fraction: float) -> float:
    return sorted_ns[max(0, int(len(sorted_ns) * fraction) - 1)] / 1e6


def invocation() -> str:
    """The command that ran this benchmark, as RESULTS.md quotes it."""
    module = Path(sys.argv[0]).stem
    return " ".join(["python -m bench." + module, *sys.argv[1:]])


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers."""
    marker = f"<!-- {name} -->"
    section = f"{marker}\n{body.rstrip()}\n{marker}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if marker in text:
        head, _, rest = text.partition(marker)
        _, _, tail = rest.partition(marker)
        text = head + section + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
