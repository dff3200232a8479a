"""swarmsh orchestrator: config, coordination store, supervisor, CLI."""

__version__ = "0.1.0"
