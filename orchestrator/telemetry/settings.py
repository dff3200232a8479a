"""Telemetry settings: ``[telemetry]`` of swarm.toml, overridden by SwarmSH's variables.

Cheap to import (no OpenTelemetry): every command resolves these, few need the SDK.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from orchestrator.errors import ConfigError, InvalidArgument
from orchestrator.numbers import check_number

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TelemetrySettings(NamedTuple):
    """Resolved settings; paths are absolute. Picklable: agents receive a copy. A
    NamedTuple, not a frozen dataclass: every one-shot CLI process builds this class, and
    a dataclass compiles its methods at import (~2% of a `swarm claim`)."""

    enabled: bool = True
    spans_file: str = "telemetry_spans.jsonl"
    archive_dir: str = "telemetry_archive"
    health_report: str = "system_health_report.json"
    max_size_mb: float = 10.0
    archive_lines: int = 0  # 0 = rotate by size only
    retention_days: float = 30.0
    capture_content: bool = False
    latency_threshold_ms: float = 500.0
    freshness_s: float = 3600.0
    health_critical: int = 60
    health_warning: int = 70
    window: str = "24h"


def parse_window(text: str) -> float | None:
    """Seconds in a window such as ``24h``, ``7d``, ``90m``; None for ``all``."""
    text = text.strip().lower()
    if text == "all":
        return None
    match = _WINDOW.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidArgument(
            f"window {text!r}: use all or a number with a unit s, m, h, d or w (24h, 7d, 90m)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


TRACES_EXPORTERS = ("otlp", "console", "none")


def traces_exporters() -> tuple[str, ...] | None:
    """The exporters ``OTEL_TRACES_EXPORTER`` selects (comma-separated, as in the
    OpenTelemetry spec): ``otlp``, ``console`` (to stderr: stdout is the command's
    output), or ``none`` (an empty tuple). None when unset: then OTLP only when an
    endpoint is set. They come on top of the span file, which is the swarm's own record
    (health, stats, monitor read it) and is turned off by TELEMETRY_ENABLED=false."""
    raw = os.environ.get("OTEL_TRACES_EXPORTER")
    if raw is None or not raw.strip():
        return None
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",")))
    if any(name not in TRACES_EXPORTERS for name in names) or ("none" in names and len(names) > 1):
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: use otlp, console or both (comma-separated), or none"
        )
    return () if names == ("none",) else names


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r}: use true or false")


def _env_number(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not a number") from None
    try:
        return check_number(value, f"{name}={raw!r}", minimum)
    except InvalidArgument as exc:
        raise ConfigError(exc.message) from None


def resolve_settings(config: SwarmConfig | None = None) -> TelemetrySettings:
    """Settings for this process: swarm.toml's ``[telemetry]`` (paths relative to its
    folder, else to the current one), then the environment."""
    # Without swarm.toml the defaults are this class's own: importing the pydantic
    # models would cost every command ~60 ms.
    section: Any = config.telemetry if config is not None else TelemetrySettings()
    base = str(config.base_dir) if config is not None else os.getcwd()

    def path(value: str) -> str:
        return os.path.realpath(os.path.join(base, os.path.expanduser(value)))

    spans_file = os.environ.get("TELEMETRY_SPANS_FILE") or section.spans_file
    window = os.environ.get("TELEMETRY_WINDOW") or section.window
    parse_window(window)  # fail early, with the variable's value in the message
    traces_exporters()  # likewise, before any span is recorded
    critical = int(_env_number("HEALTH_CRITICAL_THRESHOLD", section.health_critical))
    warning = int(_env_number("HEALTH_WARNING_THRESHOLD", section.health_warning))
    if critical > warning:
        raise ConfigError(
            f"health thresholds: critical ({critical}) is above warning ({warning});"
            " set HEALTH_CRITICAL_THRESHOLD <= HEALTH_WARNING_THRESHOLD"
        )
    return TelemetrySettings(
        enabled=_env_bool("TELEMETRY_ENABLED", section.enabled),
        spans_file=path(spans_file),
        archive_dir=path(os.environ.get("TELEMETRY_ARCHIVE_DIR") or section.archive_dir),
        health_report=path(section.health_report),
        max_size_mb=_env_number("TELEMETRY_MAX_SIZE_MB", section.max_size_mb, 0.001),
        archive_lines=int(_env_number("TELEMETRY_ARCHIVE_LINES", section.archive_lines)),
        retention_days=_env_number("TELEMETRY_RETENTION_DAYS", section.retention_days, 0.001),
        capture_content=_env_bool(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", section.capture_content
        ),
        latency_threshold_ms=_env_number(
            "HEALTH_LATENCY_THRESHOLD_MS", section.latency_threshold_ms, 0.001
        ),
        freshness_s=section.freshness_s,
        health_critical=critical,
        health_warning=warning,
        window=window,
    )
