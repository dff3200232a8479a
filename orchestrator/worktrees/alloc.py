"""What a worktree is given, claimed through the store's named records so that two
processes or hosts never get the same: a slot ``n`` (ports base+n, base+1000+n,
base+2000+n, as SwarmSH), skipping ports something already listens on, and a
database name; the PostgreSQL database itself when ``[worktrees] database_dsn`` is set.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import Conflict, NotFound, StoreError
from orchestrator.locations import without_password
from orchestrator.store.base import Store
from orchestrator.worktrees.settings import WorktreeSettings

logger = logging.getLogger(__name__)

WORKTREES = "worktree"  # namespace of the worktree records, by feature
SLOTS = "worktree-slot"  # by slot number
DATABASES = "worktree-db"  # by database name


@dataclass(frozen=True)
class Ports:
    app: int
    asset: int
    livereload: int

    @classmethod
    def of_slot(cls, base_port: int, n: int) -> Ports:
        return cls(base_port + n, base_port + 1000 + n, base_port + 2000 + n)

    def as_dict(self) -> dict[str, int]:
        return {"app": self.app, "asset": self.asset, "livereload": self.livereload}


def port_in_use(port: int) -> bool:
    """Whether something listens on ``port`` (or holds it bound) on this host."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free
        try:
            sock.bind(("", port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def claim_slot(store: Store, settings: WorktreeSettings, feature: str) -> tuple[int, Ports]:
    """The lowest free slot whose three ports nothing listens on, claimed for ``feature``."""
    taken = {record.key for record in store.list_records(SLOTS)}
    for n in range(1, settings.max_worktrees + 1):
        if str(n) in taken:
            continue
        ports = Ports.of_slot(settings.base_port, n)
        busy = [p for p in (ports.app, ports.asset, ports.livereload) if port_in_use(p)]
        if busy:
            logger.info("slot %d skipped: port %d is in use", n, busy[0])
            continue
        try:
            store.claim_record(SLOTS, str(n), {"feature": feature, "ports": ports.as_dict()})
        except Conflict:
            continue  # another process took it a moment ago
        return n, ports
    raise Conflict(
        f"no free port slot among {settings.max_worktrees} from {settings.base_port}"
        " (remove worktrees, or raise [worktrees] max_worktrees)"
    )


def database_name(project: str, feature: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", f"{project}_{feature}".lower())[:63]


def claim_database(store: Store, project: str, feature: str) -> str:
    name = database_name(project, feature)
    try:
        store.claim_record(DATABASES, name, {"feature": feature})
    except Conflict:
        owner = _owner(store, DATABASES, name)
        raise Conflict(
            f"database name {name} is taken by worktree {owner}: choose another feature name"
        ) from None
    return name


def release(store: Store, namespace: str, key: str, feature: str) -> None:
    """Free a name if ``feature`` holds it (a name another feature holds is kept)."""
    with contextlib.suppress(NotFound):
        if store.get_record(namespace, key).value.get("feature") == feature:
            store.drop_record(namespace, key)


def held_by(store: Store, namespace: str, feature: str) -> list[str]:
    return [r.key for r in store.list_records(namespace) if r.value.get("feature") == feature]


def _owner(store: Store, namespace: str, key: str) -> Any:
    with contextlib.suppress(NotFound):
        return store.get_record(namespace, key).value.get("feature")
    return None


# -- PostgreSQL databases --------------------------------------------------------------


def database_url(dsn: str, name: str) -> str:
    return without_password(urlunsplit(urlsplit(dsn)._replace(path=f"/{name}")))


def create_database(dsn: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        raise Conflict(
            f"database {name} already exists at {without_password(dsn)}: drop it or choose"
            " another feature name"
        ) from None
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot create database {name} at {without_password(dsn)}: {_first(exc)}"
        ) from None


def drop_database(dsn: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot drop database {name} at {without_password(dsn)}: {_first(exc)}"
        ) from None


def _first(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
