"""``[intelligence]`` of swarm.toml, overridden by SwarmSH's variables (``CACHE_TTL``
minutes, ``OLLAMA_HOST``, ``OLLAMA_MODEL``, ``CLAUDE_TIMEOUT``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from orchestrator.numbers import env_number
from orchestrator.sections import Section

if TYPE_CHECKING:
    from orchestrator.config import SwarmConfig

DEFAULT_MODELS = {"ollama": "qwen3", "claude": "claude-sonnet-4-20250514"}


class IntelligenceConfig(Section):
    """``[intelligence]``: the model asked to choose and analyse."""

    backend: Literal["ollama", "claude"] = "ollama"
    model: str | None = None
    host: str | None = None  # ollama: else OLLAMA_HOST; claude: the API's base URL
    timeout_s: float = Field(default=30.0, gt=0)
    top_k: int = Field(default=5, ge=1, le=50)
    cache_ttl_min: float = Field(default=5.0, ge=0)
    cache_dir: str = "real_agents/intelligence_cache"
    max_tokens: int = Field(default=1024, ge=1)


@dataclass(frozen=True)
class IntelligenceSettings:
    backend: str
    model: str
    host: str | None
    timeout_s: float
    top_k: int
    cache_ttl_s: float
    cache_dir: str
    max_tokens: int


def resolve_intelligence(config: SwarmConfig | None) -> IntelligenceSettings:
    section = config.intelligence if config is not None else IntelligenceConfig()
    backend = section.backend
    model = section.model
    host = section.host
    timeout = section.timeout_s
    if backend == "ollama":
        model = model or os.environ.get("OLLAMA_MODEL") or DEFAULT_MODELS["ollama"]
        host = host or os.environ.get("OLLAMA_HOST")
    else:
        model = model or DEFAULT_MODELS["claude"]
        timeout = env_number("CLAUDE_TIMEOUT", timeout)
    cache_dir = (
        str(config.resolve(section.cache_dir))
        if config is not None
        else os.path.abspath(section.cache_dir)
    )
    return IntelligenceSettings(
        backend=backend,
        model=model,
        host=host,
        timeout_s=timeout,
        top_k=section.top_k,
        cache_ttl_s=env_number("CACHE_TTL", section.cache_ttl_min) * 60,
        cache_dir=cache_dir,
        max_tokens=section.max_tokens,
    )
