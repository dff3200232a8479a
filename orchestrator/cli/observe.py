"""Observing commands: `swarm health`, `metrics`, `monitor`, `diagram`, `validate`,
`telemetry stats` and `telemetry archive`.

They read the store, the supervisor's state file and the span file, and record no
spans themselves: an observer polling every second must not fill what it observes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli import render
from orchestrator.cli.options import JsonFlag, WindowOpt, context_of
from orchestrator.errors import InvalidArgument

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.store.base import Store
    from orchestrator.telemetry.observe import Observation

commands = typer.Typer()
telemetry_commands = typer.Typer(
    name="telemetry",
    help="The span file: statistics and archival.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _observe(context: Context, store: Store | None) -> Observation:
    from orchestrator.telemetry.observe import observe

    return observe(store, context.agents_dir)


def _observe_once(context: Context) -> Observation:
    """One look, with a store opened and closed for it."""
    store = context.observed_store()
    try:
        return _observe(context, store)
    finally:
        if store is not None:
            store.close()


def _health(context: Context, window: str | None) -> Any:
    from orchestrator.telemetry.observe import window_health

    label, window_s = context.window(window)
    observation = _observe_once(context)
    stats, report = window_health(observation, context.telemetry, label, window_s)
    return observation, stats, report


@commands.command()
def health(
    ctx: typer.Context,
    mode: Annotated[
        str | None,
        typer.Argument(help="`detailed` (SwarmSH's form) is the same as --detailed."),
    ] = None,
    detailed: Annotated[
        bool, typer.Option("--detailed", "-d", help="Show every check and its deduction.")
    ] = False,
    window: WindowOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Score the swarm's health 0-100 from its spans and store, and write
    system_health_report.json. Status: excellent >= 80, good >= HEALTH_WARNING_THRESHOLD
    (70), fair >= HEALTH_CRITICAL_THRESHOLD (60), else critical. The formula is in the
    README (Telemetry)."""
    from orchestrator.runstate import write_json
    from orchestrator.telemetry.health import CAPS

    if mode is not None:
        if mode != "detailed":
            raise InvalidArgument(f"health {mode!r}: the only mode is detailed")
        detailed = True
    context = context_of(ctx)
    _, _, report = _health(context, window)
    data = report.to_dict()
    report_path = Path(context.telemetry.health_report)
    report_path.parent.mkdir(parents=True, exist_ok=True)  # a [telemetry] path of its own
    write_json(report_path, data)
    if as_json:
        render.emit_json(data)
        return
    render.echo(
        f"Health score: {report.score}/100 ({report.status}) — window {report.window},"
        f" report: {context.telemetry.health_report}"
    )
    for deduction in report.deductions:
        if detailed or deduction.points:
            render.echo(
                f"  {f'-{deduction.points:g}' if deduction.points else '0':<6}"
                f" {deduction.check:<16} {deduction.detail}"
                f" (max {CAPS[deduction.check]:g})"
            )
    if detailed:
        for advice in data["recommendations"]:
            render.echo(f"  → {advice}")


@commands.command()
def metrics(
    ctx: typer.Context,
    format_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="[FORMAT]", help="prometheus, json or csv (SwarmSH's form of --format)."
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="prometheus, json or csv.")
    ] = "prometheus",
    window: WindowOpt = None,
) -> None:
    """Print metrics from the store, the supervisor and the spans of the window:
    items by status, agents, restarts, operations, claim latency, tokens, health."""
    from orchestrator.telemetry.metrics import FORMATS, SwarmCollector
    from orchestrator.telemetry.metrics import render as render_metrics

    fmt = format_arg or fmt
    if fmt not in FORMATS:
        raise InvalidArgument(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    context = context_of(ctx)
    observation, stats, report = _health(context, window)
    text = render_metrics(SwarmCollector(lambda: (observation, stats, report)), fmt)
    render.echo(text.rstrip("\n"))


@commands.command()
def monitor(
    ctx: typer.Context,
    window: WindowOpt = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame and exit (no live view).")
    ] = False,
) -> None:
    """Live view, refreshed every second: agents, queue, throughput, error rate,
    health. q or Ctrl-C quits. With its output not a terminal, one frame (as --once)."""
    from orchestrator.cli.monitor import Monitor

    context = context_of(ctx)
    label, window_s = context.window(window)
    store = context.observed_store()
    try:
        view = Monitor(lambda: _observe(context, store), context.telemetry, label, window_s)
        if once or not sys.stdout.isatty():  # piped: a live view would only fill the pipe
            from rich.console import Console

            Console().print(view.frame())
            return
        try:
            view.run()
        except KeyboardInterrupt:
            pass
    finally:
        if store is not None:
            store.close()


@commands.command()
def diagram(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="flow, agents, work or timeline.")] = "flow",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    window: WindowOpt = None,
    limit: Annotated[int, typer.Option(help="Operations in the timeline.", min=1)] = 30,
) -> None:
    """Mermaid diagram of the live swarm: flow (item states and counts), agents (and
    what they hold), work (items by status), timeline (recent operations)."""
    from orchestrator.telemetry import diagrams
    from orchestrator.telemetry.observe import recent_spans

    if kind not in diagrams.KINDS:
        raise InvalidArgument(f"diagram {kind!r}: use one of {', '.join(diagrams.KINDS)}")
    context = context_of(ctx)
    if kind == "timeline":
        from orchestrator import runstate
        from orchestrator.telemetry.observe import slot_names

        _, window_s = context.window(window)
        spans = recent_spans(context.telemetry.spans_file, limit, window_s)
        text = diagrams.timeline(spans, slot_names(runstate.read(context.agents_dir)))
    else:
        text = getattr(diagrams, kind)(_observe_once(context))
    if output is None:
        render.echo(text.rstrip("\n"))
        return
    from orchestrator.files import write_atomic

    write_atomic(str(output), text.encode(), fsync=False)
    render.echo(f"wrote {kind} diagram to {output}")


@telemetry_commands.command("stats")
def stats_command(
    ctx: typer.Context,
    window: WindowOpt = None,
    archives: Annotated[
        bool, typer.Option("--archives", help="Read telemetry_archive/*.gz too.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Operations by name, ops/s, success rate, p50/p95/p99 durations, errors by type and
    tokens by model, over the spans of the window (streamed: any file size)."""
    from orchestrator.telemetry.archive import archives as archived
    from orchestrator.telemetry.stats import collect

    context = context_of(ctx)
    label, window_s = context.window(window)
    paths = [*(archived(context.telemetry) if archives else []), context.telemetry.spans_file]
    started = time.perf_counter()
    stats = collect(paths, window_s)
    data = stats.to_dict() | {
        "window": label,
        "files": paths,
        "read_s": round(time.perf_counter() - started, 3),
    }
    if as_json:
        render.emit_json(data)
        return
    render.telemetry_stats(data)


@telemetry_commands.command("archive")
def archive_command(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Rotate even if under the limits.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Rotate the span file into telemetry_archive/ (gzipped) when it is over
    TELEMETRY_MAX_SIZE_MB or TELEMETRY_ARCHIVE_LINES, and delete archives older than
    TELEMETRY_RETENTION_DAYS. Safe while agents are writing."""
    import dataclasses

    from orchestrator.telemetry.archive import archive

    result = archive(context_of(ctx).telemetry, force=force)
    if as_json:
        render.emit_json(dataclasses.asdict(result))
        return
    if result.rotated:
        render.echo(
            f"archived {result.lines} spans ({result.bytes / 1e6:.1f} MB; {result.reason})"
            f" to {result.rotated}"
        )
    else:
        render.echo("span file under the limits: not rotated (--force to rotate anyway)")
    for path in result.deleted:
        render.echo(f"deleted {path} (older than the retention)")


@commands.command()
def validate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Self-check: the install, swarm.toml, the store (a full add/claim/complete round
    trip in a scratch store of the same kind), and the span file."""
    from orchestrator.cli.selfcheck import run_checks

    checks = run_checks(context_of(ctx))
    failed = [c for c in checks if not c["ok"]]
    if as_json:
        render.emit_json({"ok": not failed, "checks": checks})
    else:
        for check in checks:
            mark = "ok  " if check["ok"] else "FAIL"
            render.echo(f"{mark} {check['name']}: {check['detail']}")
        render.echo("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    if failed:
        raise typer.Exit(1)


commands.add_typer(telemetry_commands)
