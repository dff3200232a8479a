"""The PostgreSQL store's schema: the versioned migrations in ``migrations/`` and the
one function that applies those not applied yet."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg

from orchestrator.store.pg_sql import MIGRATION_LOCK

logger = logging.getLogger(__name__)


def migrations() -> list[tuple[str, str]]:
    """(file name, SQL) of every migration, in version order (version = position + 1)."""
    folder = resources.files("orchestrator.store") / "migrations"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text(encoding="utf-8")) for name in names]


def apply_migrations(conn: psycopg.Connection[Any], schema: str, where: str) -> int:
    """Bring ``schema`` to the latest version on ``conn`` (autocommit); return it.
    Supervisors starting together serialise on an advisory lock; each migration runs
    in the same transaction as its ``schema_version`` row."""
    wanted = migrations()
    if version(conn) >= len(wanted):
        return len(wanted)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = version(conn)
        for number, (name, sql) in enumerate(wanted, start=1):
            if number > current:
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (number, name)
                )
                logger.info("applied migration %s to %s", name, where)
    return len(wanted)


def version(conn: psycopg.Connection[Any]) -> int:
    """The schema version on ``conn``'s search_path (0: none yet)."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0
