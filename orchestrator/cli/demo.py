"""The live view of `swarm demo`: a progress bar over this run's items, a table of
agents, and a summary at the end."""

from __future__ import annotations

import time
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

    def update(self, supervisor: Supervisor) -> None:
        now = time.monotonic()
        if now - self._last < 0.25 and supervisor.status.value == "running":
            return
        self._last = now
        counts = supervisor.enqueued_by_status()
        snapshot = supervisor.snapshot()
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
            title=f"agents — supervisor {snapshot['status']}",
            title_justify="left",
        )
        for column in ("agent", "backend", "pid", "state", "done", "failed", "restarts"):
            table.add_column(column)
        for row in snapshot["agents"]:
            table.add_row(
                row["name"],
                row["backend"],
                str(row["pid"] or "-"),
                row["state"],
                str(row["done"]),
                str(row["failed"]),
                str(row["restarts"]),
            )
        self.live.update(Group(self.progress, table))

    def summary(self, supervisor: Supervisor) -> None:
        counts = supervisor.enqueued_by_status()
        snapshot = supervisor.snapshot()
        elapsed = time.time() - self.started
        c = self.console
        c.print(
            f"\n[bold]Summary[/]: {len(supervisor.enqueued)} items in {elapsed:.1f}s —"
            f" [green]{counts['completed']} completed[/], [red]{counts['failed']} failed,"
            f" {counts['dead']} dead[/] (gave up after retries),"
            f" {counts['pending'] + counts['claimed'] + counts['in_progress']} unfinished"
        )
        per_group = ", ".join(f"{g} {v['done']}" for g, v in snapshot["groups"].items())
        c.print(f"done per agent group: {per_group}")
        c.print(
            f"results: {snapshot['results_dir']}/<work_item_id>.json"
            f" · agent records: {snapshot['agents_dir']}/ · store: {snapshot['store']}"
        )
