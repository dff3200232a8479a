"""`swarm monitor`: a live terminal view of the swarm, refreshed every second.

Agents, queue, throughput, error rate and health, from the store, the supervisor's
state file and the spans (read incrementally: only what was appended since the last
refresh). ``q`` or Ctrl-C quits and gives the terminal back as it was.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.records import WorkStatus
from orchestrator.telemetry.observe import Observation, SpanTail, health_of

if TYPE_CHECKING:
    from orchestrator.telemetry.settings import TelemetrySettings

STATUS_STYLE = {"excellent": "green", "good": "green", "fair": "yellow", "critical": "red"}


class Monitor:
    def __init__(
        self,
        observe: Callable[[], Observation],
        settings: TelemetrySettings,
        window: str,
        window_s: float | None,
    ) -> None:
        self.observe = observe
        self.settings = settings
        self.window = window
        self.tail = SpanTail(settings.spans_file, window_s)
        self.window_s = window_s

    def frame(self) -> Group:
        observation = self.observe()
        stats = self.tail.poll()
        health = health_of(
            observation, stats, self.settings, newest_span_ns=stats.last_ns, window=self.window
        )
        now = time.time()
        counts = observation.by_status()
        done_last_min = sum(
            1
            for item in observation.items
            if item.status == WorkStatus.COMPLETED and (item.completed_at or 0) >= now - 60
        )
        error_rate = stats.errors / stats.spans if stats.spans else 0.0
        style = STATUS_STYLE[health.status]
        header = Text.assemble(
            ("swarm monitor", "bold"),
            f"  {time.strftime('%H:%M:%S')}  window {self.window}  ",
            (f"health {health.score}/100 {health.status}", f"bold {style}"),
            f"  throughput {done_last_min / 60:.2f} items/s (last minute)",
            f"  error rate {error_rate:.1%} of {stats.spans} spans",
        )
        queue = Table(title="queue", expand=True)
        for status in WorkStatus:
            queue.add_column(status, justify="right")
        queue.add_row(*[str(counts.get(s, 0)) for s in WorkStatus])
        agents = Table(title=f"agents ({len(observation.agents)} registered)", expand=True)
        for column in ("agent", "team / specialization", "status", "holds", "heartbeat"):
            agents.add_column(column)
        holding: dict[str, list[str]] = {}
        for item in observation.items:
            if item.held and item.agent_id:
                holding.setdefault(item.agent_id, []).append(f"{item.work_type} {item.progress}%")
        for agent in observation.agents[:20]:
            agents.add_row(
                observation.name_of(agent.agent_id),
                agent.team or agent.specialization,
                agent.status,
                ", ".join(holding.get(agent.agent_id, [])) or "-",
                f"{max(0.0, now - agent.last_heartbeat):.0f}s ago",
            )
        ops = Table(title="operations in the window", expand=True)
        for column in ("operation", "count", "errors", "p50 ms", "p95 ms"):
            ops.add_column(column, justify="right" if column != "operation" else "left")
        busiest = sorted(stats.operations.items(), key=lambda kv: -kv[1].count)[:8]
        for name, op in busiest:
            ops.add_row(
                name,
                str(op.count),
                str(op.errors),
                f"{op.sketch.quantile(0.5):.2f}",
                f"{op.sketch.quantile(0.95):.2f}",
            )
        supervisor = observation.supervisor
        if supervisor and observation.supervisor_alive:
            footer = f"supervisor pid {supervisor.get('pid')} {supervisor.get('status')}"
        else:
            footer = "no supervisor running here"
        issues = [f"-{d.points:g} {d.check}: {d.detail}" for d in health.deductions if d.points]
        lines = "\n".join(issues) or "no deductions"
        return Group(
            header,
            queue,
            agents,
            ops,
            Panel(lines, title="health", border_style=style),
            Text(footer + "   (q or Ctrl-C quits)", style="dim"),
        )

    def run(self, console: Console | None = None, refresh_s: float = 1.0) -> None:
        console = console or Console()
        with _keys() as read_key, Live(self.frame(), console=console, screen=False) as live:
            while True:
                key = read_key(refresh_s)
                if key in QUIT_KEYS:
                    return
                live.update(self.frame())


QUIT_KEYS = ("q", "Q", "\x03")  # q, or Ctrl-C read as a key


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A key reader with a timeout; single keys without Enter on a terminal."""
    if not sys.stdin.isatty():

        def wait(timeout: float) -> str | None:
            time.sleep(timeout)
            return None

        yield wait
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        # Ctrl-C arrives as a key, read by the loop like q, rather than as a SIGINT that
        # could land anywhere (inside the live view's set-up, a store read) and leave the
        # terminal or the view half torn down.
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, attrs)

        def read(timeout: float) -> str | None:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 1).decode(errors="replace") if ready else None

        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
