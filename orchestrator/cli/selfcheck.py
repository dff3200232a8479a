"""`swarm validate`: a quick self-check of the install, swarm.toml, the store and the
span file. Every check reports instead of raising, so one run lists every problem."""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SwarmError

if TYPE_CHECKING:
    from orchestrator.context import Context
    from orchestrator.store import StoreOptions
    from orchestrator.store.base import Store

PACKAGES = (
    "opentelemetry-sdk",
    "prometheus-client",
    "psycopg",
    "pydantic",
    "typer",
    "ollama",
    "anthropic",
    "filelock",
    "psutil",
    "multiprocess",
)


def run_checks(context: Context) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def check(name: str, probe: Callable[[], str]) -> None:
        try:
            checks.append({"name": name, "ok": True, "detail": probe()})
        except (SwarmError, OSError, ImportError, metadata.PackageNotFoundError) as exc:
            message = exc.message if isinstance(exc, SwarmError) else f"{type(exc).__name__}: {exc}"
            checks.append({"name": name, "ok": False, "detail": message})

    check("install", _install)
    check(
        "config",
        lambda: str(context.config.source) if context.config else "no swarm.toml here (defaults)",
    )
    check("store round trip", lambda: _round_trip(context))
    check("store", lambda: _store(context))
    check("span file", lambda: _span_file(context))
    check("span export", _span_export)
    return checks


def _install() -> str:
    versions = []
    for package in PACKAGES:
        versions.append(f"{package} {metadata.version(package)}")
    for module in ("orchestrator.store.file", "agents.loop", "orchestrator.supervisor"):
        importlib.import_module(module)
    return f"swarmsh {metadata.version('swarmsh')}; " + ", ".join(versions)


def _round_trip(context: Context) -> str:
    """add -> claim -> complete in a scratch store of the configured kind."""
    from orchestrator.locations import is_url
    from orchestrator.store import open_backend

    started = time.perf_counter()
    if is_url(context.store_target):
        schema = f"swarmsh_validate_{os.getpid()}"
        store = open_backend(context.store_target, _scratch_settings(context, schema))
        try:
            _exercise(store)
        finally:
            store.close()
            _drop_schema(context.store_target, schema)
        kind = "PostgreSQL"
    else:
        with tempfile.TemporaryDirectory(prefix="swarm-validate-") as scratch:
            store = open_backend(scratch)
            try:
                _exercise(store)
            finally:
                store.close()
        kind = "file"
    return f"{kind} store: add, claim, complete in {(time.perf_counter() - started) * 1000:.0f} ms"


def _scratch_settings(context: Context, schema: str) -> StoreOptions:
    from orchestrator.config import StoreConfig

    base = context.store_settings or StoreConfig()
    return base.options()._replace(schema=schema)


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _exercise(store: Store) -> None:
    from orchestrator.records import WorkItem, WorkStatus

    work_id = store.add_work(WorkItem("work_1_00000000", "validate", "self-check"))
    item = store.claim("agent_1_00000000")
    if item is None or item.work_item_id != work_id:
        raise SwarmError("the item just added could not be claimed")
    done = store.complete(work_id, "success", agent_id="agent_1_00000000")
    if done.status != WorkStatus.COMPLETED:
        raise SwarmError(f"a completed item reads back as {done.status}")


def _store(context: Context) -> str:
    store = context.observed_store()
    if store is None:
        return f"{context.store_target}: not created yet (the first command creates it)"
    try:
        items = store.list_work(include_terminal=True)
        agents = store.list_agents()
    finally:
        store.close()
    return f"{store.path}: {len(items)} items, {len(agents)} agents"


def _span_file(context: Context) -> str:
    from orchestrator.telemetry.reader import ReadCounts, iter_spans

    settings = context.telemetry
    if not settings.enabled:
        return "telemetry disabled (TELEMETRY_ENABLED=false)"
    path = settings.spans_file
    folder = os.path.dirname(path) or "."
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{folder} is not writable: spans cannot be recorded")
    if not os.path.exists(path):
        return f"{path}: none yet"
    counts = ReadCounts()
    spans = sum(1 for _ in iter_spans(path, counts=counts))
    if counts.bad_lines:
        return f"{path}: {spans} spans, {counts.bad_lines} unparsable line(s) skipped"
    return f"{path}: {spans} spans, all lines parse"


def _span_export() -> str:
    """A span through the real exporter into a scratch file, read back."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from orchestrator.telemetry.jsonl import JsonlSpanExporter
    from orchestrator.telemetry.reader import iter_spans

    with tempfile.TemporaryDirectory(prefix="swarm-validate-") as scratch:
        path = os.path.join(scratch, "spans.jsonl")
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
        provider.get_tracer("swarmsh.validate").start_span("swarm.validate").end()
        provider.shutdown()
        spans = list(iter_spans(path))
    if len(spans) != 1 or spans[0]["name"] != "swarm.validate":
        raise SwarmError("a span written through the exporter did not read back")
    from orchestrator.telemetry.settings import traces_exporters

    exporters = traces_exporters()
    if exporters is not None:
        return f"JSONL exporter ok; OTEL_TRACES_EXPORTER: {', '.join(exporters) or 'none'}"
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return "JSONL exporter ok" + (f"; OTLP to {endpoint}" if endpoint else "; OTLP off")
