"""The live view of `swarm demo`: a progress bar over this run's items, a table of
agents, and a summary at the end."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from orchestrator.supervisor import Supervisor


class LiveView:
    def __init__(self) -> None:
        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]work"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("work", total=None, detail="starting")
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._last = 0.0
        self.started = time.time()

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def _statuses(self, supervisor: Supervisor) -> Counter[str]:
        mine = set(supervisor.enqueued)
        items = supervisor.store.list_work() if supervisor.store else []
        return Counter(i.status for i in items if i.work_item_id in mine)

    def update(self, supervisor: Supervisor) -> None:
        now = time.monotonic()
        if now - self._last < 0.25 and supervisor.status.value == "running":
            return
        self._last = now
        counts = self._statuses(supervisor)
        finished = counts["completed"] + counts["failed"] + counts["dead"]
        detail = (
            f"[green]{counts['completed']} done[/] [red]{counts['failed'] + counts['dead']}"
            f" failed[/] {counts['claimed'] + counts['in_progress']} running"
            f" {counts['pending']} queued"
        )
        self.progress.update(
            self.task, total=len(supervisor.enqueued), completed=finished, detail=detail
        )
        table = Table(
            box=box.SIMPLE_HEAD,
            title=f"agents — supervisor {supervisor.status.value}",
            title_justify="left",
        )
        for column in ("agent", "backend", "pid", "state", "done", "failed", "restarts"):
            table.add_column(column)
        for row in supervisor.snapshot()["agents"]:
            slot = supervisor.slots[row["name"]]
            done = slot.done + (slot.counters[0] if slot.counters is not None else 0)
            failed = slot.failed + (slot.counters[1] if slot.counters is not None else 0)
            table.add_row(
                row["name"],
                slot.group.backend,
                str(row["pid"] or "-"),
                row["state"],
                str(done),
                str(failed),
                str(row["restarts"]),
            )
        self.live.update(Group(self.progress, table))

    def summary(self, supervisor: Supervisor) -> None:
        counts = self._statuses(supervisor)
        elapsed = time.time() - self.started
        c = self.console
        c.print(
            f"\n[bold]Summary[/]: {len(supervisor.enqueued)} items in {elapsed:.1f}s —"
            f" [green]{counts['completed']} completed[/], [red]{counts['failed']} failed,"
            f" {counts['dead']} dead[/] (gave up after retries),"
            f" {counts['pending'] + counts['claimed'] + counts['in_progress']} unfinished"
        )
        per_group = Counter[str]()
        for slot in supervisor.slots.values():
            per_group[slot.group.name] += slot.done
        c.print("done per agent group: " + ", ".join(f"{g} {n}" for g, n in per_group.items()))
        store = supervisor.store.path if supervisor.store else "-"
        c.print(
            f"results: {supervisor.results_dir}/<work_item_id>.json"
            f" · agent records: {supervisor.agents_dir}/ · store: {store}"
        )
