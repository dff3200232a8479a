"""Human and JSON rendering for the CLI (rich is imported only when a table is drawn)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from orchestrator.records import PRIORITIES, Agent, WorkItem, WorkStatus

if TYPE_CHECKING:
    from rich.console import Console


def emit_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def echo(text: str) -> None:
    print(text, flush=True)


def _console() -> Console:
    from rich.console import Console

    # Piped output is for people reading logs or grepping: do not squeeze it to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def age(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def work_table(items: Sequence[WorkItem], limit: int, title: str) -> None:
    from rich import box
    from rich.table import Table

    now = time.time()
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("work id", "type", "priority", "status", "progress", "agent", "team", "age"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", min_width=16, overflow="fold")
    for item in items[:limit]:
        table.add_row(
            item.work_item_id,
            item.work_type,
            item.priority,
            item.status,
            f"{item.progress}%",
            item.agent_id or "-",
            item.team or "-",
            age(item.created_at, now),
            _short(item.description),
        )
    console = _console()
    console.print(table)
    if len(items) > limit:
        console.print(f"… {len(items) - limit} more (use --limit or --json)")


def agent_table(agents: Sequence[Agent], holding: dict[str, list[str]]) -> None:
    """One table per host (swarms on several machines share a PostgreSQL store)."""
    from rich import box
    from rich.table import Table

    now = time.time()
    by_host: dict[str, list[Agent]] = {}
    for agent in sorted(agents, key=lambda a: (a.host or "", a.registered_at, a.agent_id)):
        by_host.setdefault(agent.host or "-", []).append(agent)
    console = _console()
    if not by_host:
        console.print("0 agent(s)")
    for host, members in by_host.items():
        table = Table(
            title=f"host {host}: {len(members)} agent(s)", title_justify="left", box=box.SIMPLE_HEAD
        )
        for column in ("agent id", "status", "capacity", "specialization", "team", "pid"):
            table.add_column(column, no_wrap=True)
        table.add_column("heartbeat", no_wrap=True)
        table.add_column("holding")
        for agent in members:
            table.add_row(
                agent.agent_id,
                agent.status,
                str(agent.capacity),
                agent.specialization,
                agent.team or "-",
                str(agent.pid) if agent.pid else "-",
                age(agent.last_heartbeat, now) + " ago",
                ", ".join(holding.get(agent.agent_id, [])) or "-",
            )
        console.print(table)


def dashboard_data(
    store_path: str, items: Iterable[WorkItem], agents: Sequence[Agent]
) -> dict[str, Any]:
    items = list(items)
    by_status = Counter(item.status for item in items)
    pending = [i for i in items if i.status == WorkStatus.PENDING]
    pending.sort(key=lambda i: (PRIORITIES.get(i.priority, 9), i.created_at))
    points = sum(i.story_points or 0 for i in items if i.status == WorkStatus.COMPLETED)
    return {
        "store": store_path,
        "work": dict(sorted(by_status.items())),
        "work_total": len(items),
        "velocity_points": points,
        "agents": len(agents),
        "agents_active": sum(1 for a in agents if a.status == "active"),
        "held": [
            {"work_item_id": i.work_item_id, "agent_id": i.agent_id, "progress": i.progress}
            for i in items
            if i.held
        ],
        "next_up": [i.work_item_id for i in pending[:5]],
    }


def dashboard(data: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    console = _console()
    console.print(f"[bold]swarm dashboard[/bold] — store {data['store']}")
    counts = Table(title="work items", title_justify="left", box=box.SIMPLE_HEAD)
    for status in data["work"]:
        counts.add_column(status)
    counts.add_column("total")
    counts.add_row(*[str(n) for n in data["work"].values()], str(data["work_total"]))
    console.print(counts)
    console.print(
        f"agents: {data['agents']} ({data['agents_active']} active) · "
        f"velocity: {data['velocity_points']} story points · "
        f"held now: {len(data['held'])}"
    )
    if data["held"]:
        for held in data["held"][:10]:
            console.print(f"  {held['work_item_id']}  {held['agent_id']}  {held['progress']}%")
    if data["next_up"]:
        console.print("next up: " + ", ".join(data["next_up"]))


def supervisor_status(state: dict[str, Any], alive: bool) -> None:
    from rich import box
    from rich.table import Table

    now = time.time()
    console = _console()
    running = "running" if alive else f"not running (last state: {state.get('status')})"
    console.print(
        f"supervisor pid {state.get('pid')} on {state.get('host')}: {running},"
        f" up {age(state.get('started_at'), now)} · store {state.get('store')}"
    )
    if alive and state.get("metrics_url"):
        console.print(f"metrics: {state['metrics_url']}")
    table = Table(box=box.SIMPLE_HEAD)
    columns = ("agent", "state", "pid", "uptime", "cpu %", "rss MB", "done", "failed")
    for column in (*columns, "restarts", "item", "agent id"):
        table.add_column(column, no_wrap=True)
    for agent in state.get("agents", []):
        cpu, rss = agent.get("cpu_percent"), agent.get("rss_bytes")
        table.add_row(
            agent["name"],
            agent["state"],
            str(agent["pid"] or "-"),
            age(agent.get("started_at"), now) if agent.get("started_at") else "-",
            "-" if cpu is None else f"{cpu:.0f}",
            "-" if rss is None else f"{rss / 1e6:.0f}",
            str(agent.get("done", 0)),
            str(agent.get("failed", 0)),
            str(agent["restarts"]),
            agent.get("current") or "-",
            agent["agent_id"] or "-",
        )
    console.print(table)
    for name, group in state.get("groups", {}).items():
        console.print(
            f"group {name}: {group['state']}, {group['running']}/{group['count']} running,"
            f" {group['restarts']} restarts, {group['done']} done, {group['failed']} failed"
        )


def telemetry_stats(data: dict[str, Any]) -> None:
    """`swarm telemetry stats`: one table of operations, then errors and tokens."""
    from rich import box
    from rich.table import Table

    console = _console()
    rate = data["success_rate"]
    console.print(
        f"{data['spans']} spans in window {data['window']}: {data['ops_per_s']:g} ops/s,"
        f" success {'-' if rate is None else f'{rate:.2%}'}, {data['errors']} errors"
        f" ({data['lines_read']} lines read in {data['read_s']:g}s,"
        f" {data['bad_lines']} unparsable)"
    )
    table = Table(box=box.SIMPLE_HEAD, title="operations", title_justify="left")
    for column in ("operation", "count", "ops/s", "success", "p50 ms", "p95 ms", "p99 ms", "max"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, op in data["operations"].items():
        success = op["success_rate"]
        table.add_row(
            name,
            str(op["count"]),
            f"{op['ops_per_s']:g}",
            "-" if success is None else f"{success:.1%}",
            f"{op['p50_ms']:g}",
            f"{op['p95_ms']:g}",
            f"{op['p99_ms']:g}",
            f"{op['max_ms']:g}",
        )
    console.print(table)
    if data["errors_by_type"]:
        errors = ", ".join(f"{kind} {n}" for kind, n in data["errors_by_type"].items())
        console.print(f"errors by type: {errors}")
    for model, usage in data["tokens_by_model"].items():
        console.print(
            f"tokens {model}: {usage['input']} in, {usage['output']} out ({usage['calls']} calls)"
        )


def limit_lines(data: dict[str, Any]) -> list[str]:
    """One line per limit and per budget (``swarm limits``, ``swarm status``)."""
    lines = []
    for view in data.get("limits", []):
        figures = ", ".join(
            f"{name.replace('_', ' ')} {f['used']:g}/{f['capacity']:g} used"
            for name, f in view["figures"].items()
        )
        concurrent = f"/{view['max_concurrent']}" if view["max_concurrent"] else ""
        lines.append(
            f"limit {view['name']}: {figures or 'no rate figure'}; in flight"
            f" {view['in_flight']}{concurrent}, {view['waiting']} waiting,"
            f" {view['throttled_last_minute']} 429s in the last minute,"
            f" full in {view['reset_s']:g}s"
        )
    for budget in data.get("budgets", []):
        cap = budget["max_usd"]
        state = " EXHAUSTED: agents stop claiming" if budget["exhausted"] else ""
        limit = f" of ${cap:g}" if cap is not None else " (no budget)"
        lines.append(f"{budget['budget']}: ${budget['spent_usd']:.4f} spent{limit}{state}")
    return lines


def cost_table(report: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    by = report["by"]
    table = Table(box=box.SIMPLE_HEAD)
    columns = (by, "calls", "input tokens", "output tokens", "cost $", "throttled")
    for column in columns:
        table.add_column(column, no_wrap=True, justify="left" if column == by else "right")
    for row in (*report["rows"], report["total"]):
        table.add_row(
            str(row[by]),
            str(row["calls"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
            f"{row['cost_usd']:.4f}",
            str(row["throttled_waits"]),
        )
    _console().print(table)
