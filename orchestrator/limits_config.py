"""The ``[[limits]]``, ``[prices]`` and ``[budget]`` tables of swarm.toml.

They live apart from ``config`` so that the limits feature is one module to read; the
swarm config includes them. Figures follow the providers' documentation: a token
bucket per figure whose capacity is the per-minute figure (``burst_s = 60``) refilled
continuously.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator.sections import Section

LIMIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# The figures a limit may set, in the order status shows them.
FIGURES = ("requests", "input_tokens", "output_tokens")


class _Table(Section):
    pass


class LimitConfig(_Table):
    """One ``[[limits]]`` table: shared by every agent of ``backend`` (and ``model``)."""

    name: str = Field(pattern=LIMIT_NAME)
    backend: Literal["ollama", "claude", "command", "python"]
    model: str | None = None  # None: every model of the backend
    requests_per_minute: float | None = Field(default=None, gt=0)
    input_tokens_per_minute: float | None = Field(default=None, gt=0)
    output_tokens_per_minute: float | None = Field(default=None, gt=0)
    max_concurrent: int | None = Field(default=None, ge=1)
    # Bucket capacity in seconds of refill: 60 is the per-minute figure (Anthropic's
    # documented semantics); less for a provider that enforces short windows.
    burst_s: float = Field(default=60.0, gt=0, le=60)

    @model_validator(mode="after")
    def _some_figure(self) -> LimitConfig:
        if not (self.rates() or self.max_concurrent):
            raise ValueError(
                f"limit {self.name!r} sets no figure: give requests_per_minute,"
                " input_tokens_per_minute, output_tokens_per_minute or max_concurrent"
            )
        return self

    def rates(self) -> dict[str, float]:
        """Per-minute figure of each bucket this limit has."""
        figures = {
            "requests": self.requests_per_minute,
            "input_tokens": self.input_tokens_per_minute,
            "output_tokens": self.output_tokens_per_minute,
        }
        return {name: value for name, value in figures.items() if value is not None}

    def applies_to(self, backend: str, model: str | None) -> bool:
        return self.backend == backend and (self.model is None or self.model == model)


class PriceConfig(_Table):
    """``[prices."<model>"]``: US dollars per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class BudgetConfig(_Table):
    """``[budget]``: when the ledger reaches ``max_usd``, agents stop claiming."""

    max_usd: float | None = Field(default=None, gt=0)
