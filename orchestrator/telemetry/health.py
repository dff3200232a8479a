"""The health score: 100 minus six capped deductions, from the spans and the store.

=================  ===========================================================  =====
check              deduction                                                    max
=================  ===========================================================  =====
work_failures      30 x share of items finished in the window that failed/died   30
span_errors        1 per percent of spans in the window with status ERROR       20
latency            15 x (p95 - threshold) / threshold, store operations' p95    15
stale_claims       5 per held item nobody will finish: its lease has expired, or  15
                   its holder is not registered or is dead
dead_agents        5 per agent a supervisor started whose process is gone on    15
                   this host though it never deregistered, or that the running
                   supervisor gave up on (fatal); agents of ``swarm register``
                   run no process to watch: only their claims count (above)
telemetry_fresh    5 when no span ended within ``freshness_s`` (default 1 h)     5
=================  ===========================================================  =====

Status: excellent >= 80, good >= HEALTH_WARNING_THRESHOLD (70), fair >=
HEALTH_CRITICAL_THRESHOLD (60), else critical (SwarmSH's table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.records import WorkStatus

if TYPE_CHECKING:
    from orchestrator.records import WorkItem
    from orchestrator.telemetry.settings import TelemetrySettings
    from orchestrator.telemetry.stats import SpanStats

CAPS = {
    "work_failures": 30.0,
    "span_errors": 20.0,
    "latency": 15.0,
    "stale_claims": 15.0,
    "dead_agents": 15.0,
    "telemetry_fresh": 5.0,
}
ADVICE = {
    "work_failures": "look at the failed items: swarm list-work, and their result files",
    "span_errors": "see which operations fail: swarm telemetry stats (errors by type)",
    "latency": "store operations are slow: check the disk or database, or compact the store",
    "stale_claims": "a holder stopped heartbeating: is the supervisor running? (swarm status)",
    "dead_agents": "agents died or were given up on: swarm status, real_agents/*.json",
    "telemetry_fresh": "no recent spans: is anything running, and is TELEMETRY_ENABLED true?",
}


@dataclass
class Deduction:
    check: str
    points: float
    detail: str


@dataclass
class HealthReport:
    score: int
    status: str
    deductions: list[Deduction]
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    window: str
    generated_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "health_score": self.score,
            "status": self.status,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.generated_at)),
            "window": self.window,
            "thresholds": self.thresholds,
            "issue_breakdown": {d.check: d.points for d in self.deductions},
            "deductions": [
                {"check": d.check, "points": d.points, "max": CAPS[d.check], "detail": d.detail}
                for d in self.deductions
            ],
            "metrics": self.metrics,
            "recommendations": [ADVICE[d.check] for d in self.deductions if d.points > 0],
        }


def status_of(score: float, settings: TelemetrySettings) -> str:
    if score >= 80:
        return "excellent"
    if score >= settings.health_warning:
        return "good"
    if score >= settings.health_critical:
        return "fair"
    return "critical"


def assess(
    stats: SpanStats,
    items: list[WorkItem],
    *,
    dead_agents: list[str],
    registered_agents: set[str],
    newest_span_ns: int | None,
    settings: TelemetrySettings,
    window: str | None = None,
    now: float | None = None,
) -> HealthReport:
    now = time.time() if now is None else now
    since = now - stats.window_s if stats.window_s is not None else None
    deductions: list[Deduction] = []

    def deduct(check: str, points: float, detail: str) -> None:
        deductions.append(Deduction(check, round(min(CAPS[check], max(0.0, points)), 1), detail))

    finished = [
        item
        for item in items
        if item.terminal and (since is None or (item.completed_at or item.updated_at) >= since)
    ]
    failed = sum(1 for item in finished if item.status != WorkStatus.COMPLETED)
    share = failed / len(finished) if finished else 0.0
    deduct("work_failures", 30 * share, f"{failed} of {len(finished)} finished items failed")

    error_rate = stats.errors / stats.spans if stats.spans else 0.0
    deduct(
        "span_errors",
        100 * error_rate,
        f"{stats.errors} of {stats.spans} spans are errors ({error_rate:.1%})",
    )

    threshold = settings.latency_threshold_ms
    p95 = stats.store_ops.sketch.quantile(0.95) if stats.store_ops.count else 0.0
    deduct(
        "latency",
        15 * (p95 - threshold) / threshold,
        f"store operations p95 {p95:.1f} ms (threshold {threshold:g} ms)",
    )

    stale = [
        item.work_item_id
        for item in items
        if item.held
        and (
            (item.lease_expires_at or now) < now
            or item.agent_id not in registered_agents
            or item.agent_id in dead_agents
        )
    ]
    deduct(
        "stale_claims",
        5 * len(stale),
        f"{len(stale)} held item(s) past their lease or held by a dead or unknown agent",
    )

    deduct("dead_agents", 5 * len(dead_agents), f"{len(dead_agents)} dead or fatal agent(s)")

    age = None if newest_span_ns is None else max(0.0, now - newest_span_ns / 1e9)
    if not settings.enabled:
        deduct("telemetry_fresh", 0, "telemetry is disabled (TELEMETRY_ENABLED=false)")
    elif age is None:
        deduct("telemetry_fresh", 5, "no spans recorded yet")
    else:
        stale_telemetry = age > settings.freshness_s
        deduct(
            "telemetry_fresh",
            5 if stale_telemetry else 0,
            f"newest span {age:.0f}s old (limit {settings.freshness_s:g}s)",
        )

    score = max(0, min(100, round(100 - sum(d.points for d in deductions))))
    metrics = {
        "spans": stats.spans,
        "span_error_rate": round(error_rate, 4),
        "store_p95_ms": round(p95, 3),
        "finished_items": len(finished),
        "failed_items": failed,
        "work_success_rate": None if not finished else round(1 - share, 4),
        "stale_claims": stale,
        "dead_agents": dead_agents,
        "newest_span_age_s": None if age is None else round(age, 1),
    }
    thresholds = {
        "critical": settings.health_critical,
        "warning": settings.health_warning,
        "latency_ms": threshold,
        "freshness_s": settings.freshness_s,
    }
    return HealthReport(
        score,
        status_of(score, settings),
        deductions,
        metrics,
        thresholds,
        window or settings.window,
        now,
    )
