"""The PostgreSQL store's schema: the versioned migrations in ``migrations/`` and the
one function that applies those not applied yet."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import psycopg

from orchestrator.store.pg_sql import MIGRATION_LOCK

logger = logging.getLogger(__name__)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration, in version order. A migration's
    version is the number its file name starts with, not its place in the folder, so
    that one added between others (branches merged in any order) keeps its number."""
    folder = resources.files("orchestrator.store") / "migrations"
    found = []
    for path in folder.iterdir():
        if path.name.endswith(".sql"):
            found.append((int(path.name.split("_", 1)[0]), path.name, path.read_text("utf-8")))
    found.sort()
    numbers = [number for number, _name, _sql in found]
    assert len(set(numbers)) == len(numbers), f"two migrations share a number: {numbers}"
    return found


def apply_migrations(conn: psycopg.Connection[Any], schema: str, where: str) -> int:
    """Bring ``schema`` to the latest version on ``conn`` (autocommit); return it.
    Every migration not recorded yet is applied, in version order. Supervisors starting
    together serialise on an advisory lock; each migration runs in the same
    transaction as its ``schema_version`` row."""
    wanted = migrations()
    latest = wanted[-1][0]
    if applied(conn) >= {number for number, _name, _sql in wanted}:
        return latest
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = applied(conn)
        for number, name, sql in wanted:
            if number not in done:
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (number, name)
                )
                logger.info("applied migration %s to %s", name, where)
    return latest


def applied(conn: psycopg.Connection[Any]) -> set[int]:
    """The migration versions recorded on ``conn``'s search_path (none yet: empty)."""
    try:
        with conn.transaction():
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
    except psycopg.errors.UndefinedTable:
        return set()
    return {int(row[0]) for row in rows}


def version(conn: psycopg.Connection[Any]) -> int:
    """The schema version on ``conn``'s search_path (0: none yet)."""
    return max(applied(conn), default=0)
