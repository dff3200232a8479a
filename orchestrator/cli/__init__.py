"""The ``swarm`` command line: parse, call one function of the orchestrator, render.

``main`` is the console script. ``app`` (the typer application) is imported on first
use only: the commonest commands run without typer (see ``quick``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.cli.entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from orchestrator.cli.app import app

        return app
    raise AttributeError(name)
