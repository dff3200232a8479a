"""The base of every swarm.toml table: unknown keys refused, numbers finite and bounded.

One place for the rule, so that a table added by any part of the swarm (limits,
maintenance, intelligence, worktrees) refuses ``inf``, ``nan`` and absurd numbers as
the core tables do, instead of passing validation and failing later.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from orchestrator.numbers import MAX_SECONDS


class Section(BaseModel):
    # inf and nan are refused, as is any number beyond MAX_SECONDS (see numbers.py).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value) > MAX_SECONDS:
                raise ValueError(f"must be at most {MAX_SECONDS:g}")
        return value
