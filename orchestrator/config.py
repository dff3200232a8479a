"""``swarm.toml`` -> validated, typed configuration.

Errors name the file, the line when it can be found, the key and what is allowed, in
one line (exit code 2)::

    swarm.toml:4: [store] durability: must be one of 'os', 'fsync' (got 'disk')
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import ConfigError
from orchestrator.intelligence.settings import IntelligenceConfig
from orchestrator.limits_config import BudgetConfig, LimitConfig, PriceConfig
from orchestrator.locations import (
    DEFAULT_AGENTS_DIR,
    DEFAULT_RESULTS_DIR,
    DEFAULT_STORE_DIR,
    is_url,
)
from orchestrator.maintenance.settings import MaintenanceConfig
from orchestrator.records import ClaimFilter
from orchestrator.sections import Section
from orchestrator.store import DEFAULT_VIEWS_INTERVAL_S, StoreOptions
from orchestrator.worktrees.settings import WorktreesConfig


class StoreConfig(Section):
    backend: Literal["file", "postgres"] = "file"
    path: str = DEFAULT_STORE_DIR
    dsn: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    schema_name: str = Field(default="swarmsh", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    durability: Literal["os", "fsync"] = "os"
    lease_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    archive_after_s: float = Field(default=3600.0, ge=0)
    compact_mb: float = Field(default=4.0, gt=0)
    views: bool = True  # SwarmSH's JSON files (work_claims.json, ...), see store/views.py
    views_interval_s: float = Field(default=DEFAULT_VIEWS_INTERVAL_S, ge=0, le=3600)

    def options(self) -> StoreOptions:
        """What the store backends take."""
        return StoreOptions(
            lease_s=self.lease_s,
            max_attempts=self.max_attempts,
            durability=self.durability,
            archive_after_s=self.archive_after_s,
            compact_bytes=int(self.compact_mb * (1 << 20)),
            schema=self.schema_name,
            views_interval_s=self.views_interval_s if self.views else None,
        )


Backend = Literal["command", "python", "ollama", "claude"]
Restart = Literal["never", "on-failure", "always"]
Priority = Literal["critical", "high", "medium", "low"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Items an agent may claim in one round trip once its items prove short (PostgreSQL;
# agents/loop.py decides how many up to this); 1 claims one at a time.
DEFAULT_CLAIM_BATCH = 8
MAX_CLAIM_BATCH = 64


class AgentGroup(Section):
    """One ``[[agents]]`` table: ``count`` identical agent processes."""

    name: str = Field(pattern=_NAME)
    count: int = Field(default=1, ge=0, le=1024)
    role: str = "worker"
    specialization: str = "general"
    team: str | None = None
    capacity: int = Field(default=100, ge=0, le=100)
    backend: Backend = "command"
    # backend options
    model: str | None = None
    host: str | None = None
    timeout_s: float = Field(default=300.0, gt=0)
    max_tokens: int = Field(default=1024, ge=1)
    system_prompt: str | None = None
    function: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    shell: bool = False
    retries: int = Field(default=4, ge=0, le=20)
    retry_backoff_s: float = Field(default=1.0, ge=0)
    # LLM groups: answer with a JSON list of sub-tasks, enqueued as children (agents/pipeline.py)
    plan: bool = False
    plan_join: str | None = Field(default=None, pattern=_NAME)  # work type of a join item
    # what it claims
    work_types: list[str] | None = None
    teams: list[str] | None = None
    claim: Literal["priority", "intelligent"] = "priority"  # intelligent: [intelligence]
    claim_batch: int = Field(default=DEFAULT_CLAIM_BATCH, ge=1, le=MAX_CLAIM_BATCH, strict=True)
    # how it is kept alive
    restart: Restart = "on-failure"
    backoff_initial_s: float = Field(default=0.1, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_restarts: int = Field(default=5, ge=0)
    restart_window_s: float = Field(default=60.0, gt=0)
    stop_timeout_s: float = Field(default=10.0, ge=0)
    # where it works: in a git worktree of [worktrees] repo per item or per agent
    worktree: Literal["per-item", "per-agent"] | None = None
    base: str | None = None  # the branch worktrees start from (default: the checked-out one)
    keep: bool = True  # false: remove a clean worktree once its work is committed
    # what a command item's process sees of the supervisor's environment (backends/command.py)
    env: list[str] = Field(default_factory=list)
    inherit_env: bool = False

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\*?", name):
                raise ValueError(f"{name!r} is not a variable name (a trailing * matches a prefix)")
        return value

    budget_usd: float | None = Field(default=None, gt=0)  # the group's share of spending

    def claim_filter(self) -> ClaimFilter:
        """What this group's agents claim: its work_types and teams (None = any)."""
        return ClaimFilter(
            work_types=frozenset(self.work_types) if self.work_types else None,
            teams=frozenset(self.teams) if self.teams else None,
        )


class WorkSpec(Section):
    """One ``[[work]]`` table, enqueued by ``swarm up``; ``foreach`` makes one item per
    matching file, with ``{file}`` replaced in ``description`` and ``payload``. Each
    item has a key (``key``, or one derived from the work: see ``workspec``), so a
    second start does not enqueue it again."""

    work_type: str = Field(pattern=_NAME)
    description: str
    priority: Priority = "medium"
    team: str | None = None
    payload: dict[str, Any] | None = None
    count: int = Field(default=1, ge=1, le=100_000)
    foreach: str | None = None
    key: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    # Keys of other [[work]] tables (all of a table's copies) this work waits for.
    after: list[str] = Field(default_factory=list)

    @field_validator("foreach")
    @classmethod
    def _relative_glob(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(("/", "~")):
            raise ValueError("must be a glob relative to swarm.toml's folder")
        if value is not None:
            try:
                # Compiles the pattern; a folder that is not there lists nothing.
                next(Path(os.devnull, "none").glob(value), None)
            except ValueError as exc:
                raise ValueError(f"not a valid glob ({exc})") from None
        return value


class SupervisorConfig(Section):
    agents_dir: str = DEFAULT_AGENTS_DIR
    results_dir: str = DEFAULT_RESULTS_DIR
    tick_s: float = Field(default=0.2, gt=0, le=5)
    sample_s: float = Field(default=2.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535)
    http_port: int = Field(default=0, ge=0, le=65535)


class TelemetryConfig(Section):
    """``[telemetry]``: where spans go and how they are judged. Paths are relative to
    swarm.toml's folder; the environment variables of the README override each key."""

    enabled: bool = True
    spans_file: str = "telemetry_spans.jsonl"
    archive_dir: str = "telemetry_archive"
    health_report: str = "system_health_report.json"
    max_size_mb: float = Field(default=10.0, gt=0)
    archive_lines: int = Field(default=0, ge=0)
    retention_days: float = Field(default=30.0, gt=0)
    capture_content: bool = False
    latency_threshold_ms: float = Field(default=500.0, gt=0)
    freshness_s: float = Field(default=3600.0, gt=0)
    health_critical: int = Field(default=60, ge=0, le=100)
    health_warning: int = Field(default=70, ge=0, le=100)
    window: str = Field(default="24h", pattern=r"^(all|\d+(\.\d+)?[smhdw])$")


class SwarmConfig(Section):
    store: StoreConfig = Field(default_factory=StoreConfig)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    agents: list[AgentGroup] = Field(default_factory=list)
    work: list[WorkSpec] = Field(default_factory=list)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    intelligence: IntelligenceConfig = Field(default_factory=IntelligenceConfig)
    worktrees: WorktreesConfig = Field(default_factory=WorktreesConfig)
    limits: list[LimitConfig] = Field(default_factory=list)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> SwarmConfig:
        if self.store.backend == "postgres" and not self.store.dsn:
            raise ValueError('[store] backend = "postgres" needs dsn = "postgresql://…"')
        return self

    @model_validator(mode="after")
    def _unique_group_names(self) -> SwarmConfig:
        names = [group.name for group in self.agents]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"agent group name {name!r} is used twice")
        limits = [limit.name for limit in self.limits]
        for name in limits:
            if limits.count(name) > 1:
                raise ValueError(f"limit name {name!r} is used twice")
        return self

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        return (self.base_dir / os.path.expanduser(path)).resolve()

    def store_path(self) -> Path:
        return self.resolve(self.store.path)

    def store_target(self) -> str:
        """What open_store takes: the PostgreSQL DSN, or the file store's directory."""
        if self.store.backend == "postgres":
            assert self.store.dsn is not None
            return self.store.dsn
        return str(self.store_path())

    def with_store(self, target: str) -> SwarmConfig:
        """This config with the store replaced by ``--store`` / ``SWARM_STORE``."""
        if is_url(target):
            store = self.store.model_copy(update={"backend": "postgres", "dsn": target})
        else:
            path = str(Path(target).resolve())
            store = self.store.model_copy(update={"backend": "file", "path": path})
        copy = self.model_copy(update={"store": store})
        copy.source = self.source
        return copy


def load_config(path: str | os.PathLike[str]) -> SwarmConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (create it, or pass -c PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
        config = SwarmConfig.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_describe(file, text, exc)) from None
    except RecursionError:
        raise ConfigError(f"{file}: tables or arrays nested too deeply") from None
    config.source = file.resolve()
    return config


def _describe(file: Path, text: str, exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    table, index, key = _split_loc(loc)
    section = f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]" if table else ""
    where = f"{section} {key}".strip()
    line = _find_line(text, table, index, key)
    prefix = f"{file}:{line}" if line else str(file)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(table)
        return f"{prefix}: {where}: unknown key; allowed keys: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = "must be one of " + message.removeprefix("Input should be ").replace(" or ", ", ")
    if not key:
        return f"{prefix}: {message}"
    return f"{prefix}: {where}: {message} (got {error.get('input')!r})"


def _split_loc(loc: list[str]) -> tuple[str, int | None, str]:
    """(table, array index, key) of a pydantic error location."""
    if len(loc) >= 3 and loc[1].isdigit():
        return loc[0], int(loc[1]), ".".join(loc[2:])
    if len(loc) >= 2:
        return loc[0], None, ".".join(loc[1:])
    return "", None, loc[0] if loc else ""


def _allowed_keys(table: str) -> list[str]:
    model: type[BaseModel] = SwarmConfig
    field = model.model_fields.get(table)
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        model = annotation
    else:
        for arg in getattr(annotation, "__args__", ()):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _find_line(text: str, table: str, index: int | None, key: str) -> int | None:
    """Best-effort line number of ``key`` in ``[table]`` (or the index-th ``[[table]]``)."""
    key = key.split(".")[0]
    current, seen = "", -1
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    header_re = re.compile(r"^\s*\[(\[)?\s*([^\]]+?)\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            current = header.group(2)
            if current == table and header.group(1):
                seen += 1
            if not table and current == key:
                return number
            continue
        in_table = current == table and (index is None or seen == index)
        if in_table and key_re.match(line):
            return number
    return None
