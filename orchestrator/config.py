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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ConfigError

DEFAULT_CONFIG = "swarm.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    backend: Literal["file"] = "file"
    path: str = "agent_coordination"
    durability: Literal["os", "fsync"] = "os"
    lease_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    archive_after_s: float = Field(default=3600.0, ge=0)
    compact_mb: float = Field(default=4.0, gt=0)


class SwarmConfig(_Section):
    store: StoreConfig = Field(default_factory=StoreConfig)
    # Filled by later parts of swarmsh (agent groups, initial work, telemetry).
    agents: list[dict[str, Any]] = Field(default_factory=list)
    work: list[dict[str, Any]] = Field(default_factory=list)
    telemetry: dict[str, Any] = Field(default_factory=dict)

    source: Path | None = Field(default=None, exclude=True)

    def store_path(self) -> Path:
        """The store directory, relative to the config file's folder."""
        base = self.source.parent if self.source else Path.cwd()
        return (base / os.path.expanduser(self.store.path)).resolve()


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
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    try:
        config = SwarmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(file, text, exc)) from None
    config.source = file.resolve()
    return config


def _describe(file: Path, text: str, exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = loc[-1] if loc else ""
    section = ".".join(p for p in loc[:-1] if not p.isdigit())
    where = f"[{section}] {key}" if section else key
    line = _find_line(text, loc)
    prefix = f"{file}:{line}" if line else str(file)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"{prefix}: {where}: unknown key; allowed keys: {', '.join(allowed)}"
    message = error["msg"]
    if error["type"] == "literal_error":
        message = "must be one of " + message.removeprefix("Input should be ").replace(" or ", ", ")
    return f"{prefix}: {where}: {message} (got {error.get('input')!r})"


def _allowed_keys(section: list[str]) -> list[str]:
    model: type[BaseModel] = SwarmConfig
    for part in section:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _find_line(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of ``loc`` (a table path and a key) in the TOML text."""
    parts = [p for p in loc if not p.isdigit()]
    if not parts:
        return None
    table, key = ".".join(parts[:-1]), parts[-1]
    current = ""
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    header_re = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            current = header.group(1)
            if not table and current == key:
                return number
            continue
        if current == table and key_re.match(line):
            return number
    return None
