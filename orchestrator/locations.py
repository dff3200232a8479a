"""Where a swarm's files and store are by default, and how a store target is read."""

from __future__ import annotations

import os

DEFAULT_CONFIG = "swarm.toml"
DEFAULT_STORE_DIR = "agent_coordination"
DEFAULT_AGENTS_DIR = "real_agents"
DEFAULT_RESULTS_DIR = "real_work_results"

URL_PREFIXES = ("postgresql://", "postgres://")


def is_url(target: str | os.PathLike[str]) -> bool:
    """Whether a store target is a PostgreSQL URL (else it is the file store's folder)."""
    return str(target).startswith(URL_PREFIXES)


def without_password(dsn: str) -> str:
    """The URL with its password left out, for whatever is written down (.env files,
    crontab lines, logs): libpq finds the password in PGPASSWORD or ~/.pgpass."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
