"""``[maintenance]`` of swarm.toml with SwarmSH's defaults, and its environment
overrides (``WORK_ARCHIVE_DAYS``, ``WORK_MAX_ACTIVE``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field

from orchestrator.errors import ConfigError
from orchestrator.numbers import env_number
from orchestrator.sections import Section

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

_EVERY = r"^\d+(\.\d+)?[smhdw]$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class MaintenanceConfig(Section):
    """``[maintenance]``: which tasks the supervisor runs, and how often."""

    enabled: bool = True
    health_every: str = Field(default="2h", pattern=_EVERY)
    telemetry_every: str = Field(default="4h", pattern=_EVERY)
    performance_every: str = Field(default="6h", pattern=_EVERY)
    optimize_at: str = Field(default="03:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    sweep_every: str = Field(default="5m", pattern=_EVERY)
    work_archive_days: float = Field(default=7.0, gt=0)
    work_max_active: int = Field(default=500, ge=1)
    performance_report: str = "telemetry_performance_report.json"
    optimization_report: str = "work_optimization_report.json"


@dataclass(frozen=True)
class MaintenanceSettings:
    """Resolved: periods in seconds, paths absolute."""

    enabled: bool
    health_s: float
    telemetry_s: float
    performance_s: float
    optimize_at: tuple[int, int]  # local time (hour, minute), as cron reads it
    sweep_s: float
    work_archive_days: float
    work_max_active: int
    performance_report: str
    optimization_report: str


def seconds(text: str) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)([smhdw])$", text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"period {text!r}: use a number with a unit s, m, h, d or w (2h, 30m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def resolve_maintenance(config: SwarmConfig | None) -> MaintenanceSettings:
    section = config.maintenance if config is not None else MaintenanceConfig()
    hour, minute = section.optimize_at.split(":")

    def path(value: str) -> str:
        if config is not None:
            return str(config.resolve(value))
        return os.path.abspath(os.path.expanduser(value))

    return MaintenanceSettings(
        enabled=section.enabled,
        health_s=seconds(section.health_every),
        telemetry_s=seconds(section.telemetry_every),
        performance_s=seconds(section.performance_every),
        optimize_at=(int(hour), int(minute)),
        sweep_s=seconds(section.sweep_every),
        work_archive_days=env_number("WORK_ARCHIVE_DAYS", section.work_archive_days, 0.001),
        work_max_active=int(env_number("WORK_MAX_ACTIVE", section.work_max_active, 1)),
        performance_report=path(section.performance_report),
        optimization_report=path(section.optimization_report),
    )
