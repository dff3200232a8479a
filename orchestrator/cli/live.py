"""The live view of a swarm in the foreground (`swarm up` on a terminal, `swarm demo`):
groups, agents and what each works on, the queue, throughput and the last failures.

It reads only the supervisor's snapshot, its count of this run's items and the store's
counts by status, at most a few times a second.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from orchestrator.cli.render import age, limit_lines
from orchestrator.limits import status_if_configured
from orchestrator.records import WorkStatus
from orchestrator.reporting import work_counts

if TYPE_CHECKING:
    from orchestrator.supervisor import Supervisor

REFRESH_S = 0.5
# Limits live in the store's shared documents, read under the store's lock: less often.
LIMITS_REFRESH_S = 2.0


class SwarmView:
    def __init__(self, *, progress: bool = False, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress: Progress | None = None
        if progress:
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
        self._limits_at = 0.0
        self._limit_lines: list[str] = []
        self.started = time.time()

    def __enter__(self) -> SwarmView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def update(self, supervisor: Supervisor) -> None:
        now = time.monotonic()
        if now - self._last < REFRESH_S and supervisor.status.value == "running":
            return
        self._last = now
        snapshot = supervisor.snapshot()
        parts: list[Any] = [self._header(snapshot)]
        enqueued = supervisor.enqueued if self.progress is not None else None
        every, this_run = work_counts(supervisor.store, enqueued)
        if self.progress is not None:
            self._advance(this_run, len(supervisor.enqueued))
            parts.append(self.progress)
        parts += [_groups(snapshot), _agents(snapshot), _queue(every)]
        limit_lines = self._limits(supervisor, now)
        if limit_lines:
            parts.append(_limits(limit_lines))
        if snapshot["recent_failures"]:
            parts.append(_failures(snapshot["recent_failures"]))
        self.live.update(Group(*parts))

    def _limits(self, supervisor: Supervisor, now: float) -> list[str]:
        """Each limit's use and each budget's spending, when swarm.toml sets any."""
        if now - self._limits_at >= LIMITS_REFRESH_S and supervisor.store is not None:
            self._limits_at = now
            data = status_if_configured(supervisor.store, supervisor.config)
            self._limit_lines = limit_lines(data) if data else []
        return self._limit_lines

    def _header(self, snapshot: dict[str, Any]) -> Text:
        up = age(snapshot["started_at"], time.time())
        return Text.assemble(
            ("swarm ", "bold"),
            f"supervisor {snapshot['pid']} {snapshot['status']} · up {up} · ",
            (f"{snapshot['throughput_per_s'] * 60:.1f} items/min", "bold"),
            " (last minute) · store ",
            str(snapshot["store"]),
        )

    def _advance(self, counts: Counter[str], total: int) -> None:
        assert self.progress is not None
        finished = counts["completed"] + counts["failed"] + counts["dead"] + counts["cancelled"]
        detail = (
            f"[green]{counts['completed']} done[/] [red]{counts['failed'] + counts['dead']}"
            f" failed[/] {counts['claimed'] + counts['in_progress']} running"
            f" {counts['pending']} queued"
        )
        self.progress.update(self.task, total=total, completed=finished, detail=detail)


def _groups(snapshot: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="groups", title_justify="left")
    for column in ("group", "backend", "state", "running", "restarts", "done", "failed"):
        table.add_column(column, no_wrap=True)
    for name, g in snapshot["groups"].items():
        table.add_row(
            name,
            g["backend"],
            g["state"],
            f"{g['running']}/{g['count']}",
            str(g["restarts"]),
            str(g["done"]),
            str(g["failed"]),
        )
    return table


def _agents(snapshot: dict[str, Any]) -> Table:
    now = time.time()
    table = Table(box=box.SIMPLE_HEAD, title="agents", title_justify="left")
    for column in ("agent", "state", "item", "uptime", "cpu %", "rss MB", "done", "failed"):
        table.add_column(column, no_wrap=column != "item", overflow="ellipsis")
    for row in snapshot["agents"]:
        item = row["current"] or "-"
        if row["current_description"]:
            item = f"{item} {row['current_description']}"
        table.add_row(
            row["name"],
            row["state"],
            item,
            age(row["started_at"], now) if row["started_at"] else "-",
            "-" if row["cpu_percent"] is None else f"{row['cpu_percent']:.0f}",
            "-" if row["rss_bytes"] is None else f"{row['rss_bytes'] / 1e6:.0f}",
            str(row["done"]),
            str(row["failed"]),
        )
    return table


def _queue(counts: Counter[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="queue", title_justify="left")
    for status in WorkStatus:
        table.add_column(str(status), justify="right")
    table.add_row(*[str(counts.get(status, 0)) for status in WorkStatus])
    return table


def _limits(lines: list[str]) -> Group:
    title = Text("limits and budgets", style="italic")
    return Group(title, *(Text(f"  {line}") for line in lines))


def _failures(failures: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="last failures", title_justify="left")
    for column in ("when", "agent", "item", "status", "error"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=8)
    for f in failures:
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(f["at"])),
            f["agent"],
            f["work_item_id"],
            f["status"],
            f["error"],
        )
    return table


def print_outcome(supervisor: Supervisor, console: Console) -> None:
    """After a run: the top errors of items that died, then why the exit code is not 0."""
    dead = supervisor.dead_errors()
    if dead:
        console.print(f"[red]{sum(dead.values())} item(s) ended dead[/]; top errors:")
        for error, count in dead.most_common(5):
            console.print(f"  {count:>4}  {error}", markup=False, highlight=False)


def print_summary(supervisor: Supervisor, console: Console, started: float) -> None:
    """`swarm demo`'s closing lines: this run's items by outcome, per group, where to look."""
    counts = work_counts(supervisor.store, supervisor.enqueued)[1]
    snapshot = supervisor.snapshot()
    unfinished = counts["pending"] + counts["claimed"] + counts["in_progress"] + counts["blocked"]
    console.print(
        f"\n[bold]Summary[/]: {sum(counts.values())} items in {time.time() - started:.1f}s —"
        f" [green]{counts['completed']} completed[/], [red]{counts['failed']} failed,"
        f" {counts['dead']} dead[/] (gave up after retries)"
        + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")
        + f", {unfinished} unfinished"
    )
    per_group = ", ".join(f"{g} {v['done']}" for g, v in snapshot["groups"].items())
    console.print(f"done per agent group: {per_group}")
    console.print(
        f"results: {snapshot['results_dir']}/<work_item_id>.json"
        f" · agent records and logs: {snapshot['agents_dir']}/ · store: {snapshot['store']}"
    )
