"""The supervisor's ``/metrics`` endpoint: live supervisor state, the store, and the
spans appended since the supervisor started."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Conflict
from orchestrator.telemetry.metrics import MetricsServer, SwarmCollector
from orchestrator.telemetry.observe import Observation, SpanTail, health_of

if TYPE_CHECKING:
    from orchestrator.store.base import Store
    from orchestrator.telemetry.health import HealthReport
    from orchestrator.telemetry.settings import TelemetrySettings
    from orchestrator.telemetry.stats import SpanStats


def serve(
    port: int,
    store: Store,
    settings: TelemetrySettings,
    snapshot: Callable[[], dict[str, Any]],
) -> MetricsServer:
    """Start serving; ``store`` must be this thread's own (scrapes run in a thread)."""
    tail = SpanTail(settings.spans_file, from_end=True)  # counters start with the supervisor
    lock = threading.Lock()

    def source() -> tuple[Observation, SpanStats, HealthReport | None]:
        with lock:
            observation = Observation(
                items=store.list_work(include_terminal=True),
                agents=store.list_agents(),
                supervisor=snapshot(),
                supervisor_alive=True,
            )
            stats = tail.poll()
            health = health_of(observation, stats, settings, newest_span_ns=stats.last_ns)
            return observation, stats, health

    try:
        return MetricsServer(SwarmCollector(source), port)
    except OSError as exc:
        raise Conflict(
            f"[supervisor] metrics_port = {port}: cannot listen on 127.0.0.1:{port}"
            f" ({exc.strerror or exc}); choose a free port, or 0 to turn /metrics off"
        ) from None
