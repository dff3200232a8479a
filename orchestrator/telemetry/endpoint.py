"""The supervisor's ``/metrics`` endpoint: live supervisor state, the store, and the
spans appended since the supervisor started."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.core import Metric

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
    extra: Callable[[Store], Iterable[Metric]] | None = None,
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
        more = None if extra is None else lambda: _locked(lock, lambda: list(extra(store)))
        return MetricsServer(SwarmCollector(source, more), port)
    except OSError as exc:
        raise Conflict(
            f"[supervisor] metrics_port = {port}: cannot listen on 127.0.0.1:{port}"
            f" ({exc.strerror or exc}); choose a free port, or 0 to turn /metrics off"
        ) from None


T = TypeVar("T")


def _locked(lock: threading.Lock, call: Callable[[], T]) -> T:
    with lock:  # one scrape at a time on this thread's store
        return call()
