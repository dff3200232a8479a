"""Metrics from the store, the supervisor and the spans, as one prometheus-client
collector: ``swarm metrics`` renders it as Prometheus text, JSON or CSV, and the
supervisor serves it on ``/metrics`` (127.0.0.1 only)."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from orchestrator.records import ALL_STATUSES
from orchestrator.telemetry.stats import CLAIM_BUCKETS_S

if TYPE_CHECKING:
    from orchestrator.telemetry.health import HealthReport
    from orchestrator.telemetry.observe import Observation
    from orchestrator.telemetry.stats import SpanStats

logger = logging.getLogger(__name__)

FORMATS = ("prometheus", "json", "csv")


class SwarmCollector(Collector):
    """``source()`` returns what to report at each collection."""

    def __init__(
        self,
        source: Callable[[], tuple[Observation, SpanStats, HealthReport | None]],
        extra: Callable[[], Iterable[Metric]] | None = None,
    ) -> None:
        self.source = source
        self.extra = extra  # more families (limits and the cost ledger)

    def collect(self) -> Iterator[Metric]:
        if self.extra is not None:
            yield from self.extra()
        observation, stats, health = self.source()
        items = GaugeMetricFamily(
            "swarm_work_items", "Work items in the store by status", labels=["status"]
        )
        counts = observation.by_status()
        for work_status in sorted(ALL_STATUSES):
            items.add_metric([work_status], counts.get(work_status, 0))
        yield items

        registered = GaugeMetricFamily(
            "swarm_agents_registered", "Agents registered in the store by status", labels=["status"]
        )
        by_status: dict[str, int] = {"active": 0, "inactive": 0}
        for agent in observation.agents:
            by_status[agent.status] = by_status.get(agent.status, 0) + 1
        for status, count in sorted(by_status.items()):
            registered.add_metric([status], count)
        yield registered

        supervisor = observation.supervisor if observation.supervisor_alive else None
        processes = GaugeMetricFamily(
            "swarm_agent_processes",
            "Agent processes of the running supervisor by group and state",
            labels=["group", "state"],
        )
        restarts = CounterMetricFamily(
            "swarm_agent_restarts",
            "Restarts of agent processes by the running supervisor",
            labels=["group"],
        )
        if supervisor is not None:
            states: dict[tuple[str, str], int] = {}
            for agent in supervisor.get("agents", []):
                key = (str(agent.get("group")), str(agent.get("state")))
                states[key] = states.get(key, 0) + 1
            for (group, state), count in sorted(states.items()):
                processes.add_metric([group, state], count)
            for group, info in sorted(supervisor.get("groups", {}).items()):
                restarts.add_metric([group], int(info.get("restarts", 0)))
        yield processes
        yield restarts

        operations = CounterMetricFamily(
            "swarm_operations",
            "Spans by operation and status (within the span window)",
            labels=["operation", "status"],
        )
        for name, op in sorted(stats.operations.items()):
            operations.add_metric([name, "ok"], op.count - op.errors)
            operations.add_metric([name, "error"], op.errors)
        yield operations

        cumulative, buckets = 0, []
        for bound, count in zip(CLAIM_BUCKETS_S, stats.claim_buckets, strict=True):
            cumulative += count
            buckets.append((_bound(bound), cumulative))
        buckets.append(("+Inf", stats.claim_count))
        yield HistogramMetricFamily(
            "swarm_claim_duration_seconds",
            "Time a claim took in the store (from the claim spans)",
            buckets=buckets,
            sum_value=stats.claim_sum_s,
        )

        tokens = CounterMetricFamily(
            "swarm_gen_ai_tokens", "LLM tokens by model and direction", labels=["model", "type"]
        )
        for model, usage in sorted(stats.tokens.items()):
            tokens.add_metric([model, "input"], usage["input"])
            tokens.add_metric([model, "output"], usage["output"])
        yield tokens

        if health is not None:
            score = GaugeMetricFamily("swarm_health_score", "Health score 0-100 (swarm health)")
            score.add_metric([], health.score)
            yield score


def _bound(value: float) -> str:
    return repr(float(value))


def registry_for(collector: SwarmCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(collector: SwarmCollector, fmt: str) -> str:
    registry = registry_for(collector)
    if fmt == "prometheus":
        return generate_latest(registry).decode()
    rows = [
        (sample.name, sample.labels, sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]
    if fmt == "json":
        import orjson

        data: dict[str, Any] = {}
        for name, labels, value in rows:
            data.setdefault(name, []).append({"labels": labels, "value": value})
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "labels", "value"])
    for name, labels, value in rows:
        writer.writerow([name, ";".join(f"{k}={v}" for k, v in sorted(labels.items())), value])
    return out.getvalue()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would fill the supervisor's log."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress must not hold up the supervisor's exit


class MetricsServer:
    """``/metrics`` on 127.0.0.1:<port> in a daemon thread: prometheus-client's WSGI
    app, but only on that path. Its own server answers every path with the metrics, so
    a typo in a scrape config or a probe of ``/healthz`` would look like success."""

    def __init__(self, collector: SwarmCollector, port: int) -> None:
        from prometheus_client import make_wsgi_app

        metrics_app = make_wsgi_app(registry_for(collector))

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            if environ.get("PATH_INFO") == "/metrics":
                return list(metrics_app(environ, start_response))
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: metrics are served on /metrics\n"]

        self.server = make_server("127.0.0.1", port, app, _Server, handler_class=_QuietHandler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )
        self.thread.start()
        self.port = int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
