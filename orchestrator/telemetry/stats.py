"""Statistics over a window of spans, in one streaming pass and bounded memory.

Durations go into a log-bucket sketch per operation (quantiles within 1% of the exact
value, a few hundred buckets at most) instead of a list, so a 1 GB span file costs the
same memory as a small one.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orchestrator.telemetry.reader import ReadCounts, iter_spans

# Bounds (seconds) of the claim latency histogram Prometheus gets.
CLAIM_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_GAMMA = 1.02  # bucket i holds (gamma^(i-1), gamma^i]: 1% relative error at the midpoint
_LOG_GAMMA = math.log(_GAMMA)


class Sketch:
    """Approximate quantiles of positive numbers (durations in ms)."""

    __slots__ = ("buckets", "count", "high", "low", "zeros")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.zeros = 0
        self.low = math.inf
        self.high = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if value <= 1e-6:
            self.zeros += 1
        else:
            self.buckets[math.ceil(math.log(value) / _LOG_GAMMA)] += 1

    def quantile(self, q: float) -> float:
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        seen = self.zeros
        if rank < seen:
            return 0.0
        for index in sorted(self.buckets):  # rank < count: it stops in a bucket
            seen += self.buckets[index]
            if rank < seen:
                break
        estimate = 2 * _GAMMA**index / (_GAMMA + 1)
        # A bucket's midpoint may lie beyond the values it holds: a p99 above the max
        # is a contradiction a reader notices, so stay within what was seen.
        return min(max(estimate, self.low), self.high)


@dataclass
class OperationStats:
    count: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    sketch: Sketch = field(default_factory=Sketch)

    def add(self, duration_ms: float, error: bool) -> None:
        self.count += 1
        self.errors += error
        self.total_ms += duration_ms
        self.max_ms = max(self.max_ms, duration_ms)
        self.sketch.add(duration_ms)


@dataclass
class SpanStats:
    window_s: float | None
    now_ns: int
    spans: int = 0
    errors: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    operations: dict[str, OperationStats] = field(default_factory=dict)
    store_ops: OperationStats = field(default_factory=OperationStats)
    errors_by_type: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    claim_buckets: list[int] = field(default_factory=lambda: [0] * len(CLAIM_BUCKETS_S))
    claim_count: int = 0
    claim_sum_s: float = 0.0
    read: ReadCounts = field(default_factory=ReadCounts)

    def add(self, span: dict[str, Any]) -> None:
        name = str(span.get("name"))
        duration = float(span.get("duration_ms") or 0.0)
        error = span.get("status") == "ERROR"
        attributes = span.get("attributes") or {}
        self.spans += 1
        start, end = span.get("start_unix_nano") or 0, span["end_unix_nano"]
        self.first_ns = start if self.first_ns is None else min(self.first_ns, start)
        self.last_ns = end if self.last_ns is None else max(self.last_ns, end)
        operation = self.operations.get(name)
        if operation is None:
            operation = self.operations[name] = OperationStats()
        operation.add(duration, error)
        if name.startswith("swarm.") and "swarm.store.backend" in attributes:
            self.store_ops.add(duration, error)
        if name == "swarm.claim":
            seconds = duration / 1000
            self.claim_count += 1
            self.claim_sum_s += seconds
            for index, bound in enumerate(CLAIM_BUCKETS_S):
                if seconds <= bound:
                    self.claim_buckets[index] += 1
                    break
        if error:
            self.errors += 1
            self.errors_by_type[str(attributes.get("error.type") or "unknown")] += 1
        if "gen_ai.usage.input_tokens" in attributes or "gen_ai.usage.output_tokens" in attributes:
            model = str(
                attributes.get("gen_ai.response.model")
                or attributes.get("gen_ai.request.model")
                or "unknown"
            )
            usage = self.tokens.setdefault(model, {"calls": 0, "input": 0, "output": 0})
            usage["calls"] += 1
            usage["input"] += int(attributes.get("gen_ai.usage.input_tokens") or 0)
            usage["output"] += int(attributes.get("gen_ai.usage.output_tokens") or 0)

    @property
    def elapsed_s(self) -> float:
        """The time the rates are over: what the spans cover, from the first one's start
        (or the window's, if it started before) to the last one's end. Not the whole
        window: a swarm that ran 10 minutes of the last 24 h did not run at 1/144 of
        its pace. At least a second, so that one short span is not thousands of ops/s."""
        if self.first_ns is None or self.last_ns is None:
            return 0.0
        first = self.first_ns
        if self.window_s is not None:
            first = max(first, self.now_ns - int(self.window_s * 1e9))
        return max((self.last_ns - first) / 1e9, 1.0)

    @property
    def success_rate(self) -> float | None:
        return None if not self.spans else 1 - self.errors / self.spans

    def to_dict(self) -> dict[str, Any]:
        elapsed = self.elapsed_s
        return {
            "window_s": self.window_s,
            "spans": self.spans,
            "errors": self.errors,
            "ops_per_s": _rate(self.spans, elapsed),
            "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            "first_span": self.first_ns,
            "last_span": self.last_ns,
            "operations": {
                name: _operation_dict(op, elapsed)
                for name, op in sorted(self.operations.items(), key=lambda kv: -kv[1].count)
            },
            "store_operations": _operation_dict(self.store_ops, elapsed),
            "errors_by_type": dict(self.errors_by_type.most_common()),
            "tokens_by_model": self.tokens,
            "lines_read": self.read.lines,
            "bad_lines": self.read.bad_lines,
        }


def _rate(count: int, elapsed: float) -> float:
    return float(f"{count / elapsed:.4g}") if elapsed else 0.0


def _operation_dict(op: OperationStats, elapsed: float) -> dict[str, Any]:
    return {
        "count": op.count,
        "errors": op.errors,
        "ops_per_s": _rate(op.count, elapsed),
        "success_rate": round(1 - op.errors / op.count, 4) if op.count else None,
        "mean_ms": round(op.total_ms / op.count, 3) if op.count else 0.0,
        "p50_ms": round(op.sketch.quantile(0.50), 3),
        "p95_ms": round(op.sketch.quantile(0.95), 3),
        "p99_ms": round(op.sketch.quantile(0.99), 3),
        "max_ms": round(op.max_ms, 3),
    }


def collect(paths: list[str] | str, window_s: float | None, now: float | None = None) -> SpanStats:
    """Statistics of the spans that ended within ``window_s`` of ``now`` (None: all)."""
    now_ns = int((time.time() if now is None else now) * 1e9)
    since = None if window_s is None else now_ns - int(window_s * 1e9)
    stats = SpanStats(window_s=window_s, now_ns=now_ns)
    for span in iter_spans(paths, since_ns=since, counts=stats.read):
        stats.add(span)
    return stats
