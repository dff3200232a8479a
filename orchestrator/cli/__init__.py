"""The ``swarm`` command line: parse, call one function of the orchestrator, render."""

from __future__ import annotations

from orchestrator.cli.app import app, main

__all__ = ["app", "main"]
