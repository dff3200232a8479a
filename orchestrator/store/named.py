"""Named records: small values claimed atomically under a (namespace, key) name.

A general facility of the store for things that must be unique across processes and
hosts without being work items: a port, a database name, a worktree. ``claim_record``
creates a name or fails with Conflict when it is taken, however many processes try at
once (the file store decides under its lock, PostgreSQL by a primary key).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Protocol

from orchestrator.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$")


class NamedRecord(NamedTuple):
    # A NamedTuple, not a frozen dataclass: it is built at import by every process.
    namespace: str
    key: str
    value: dict[str, Any]
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NamedRecord:
        return cls(
            str(raw["namespace"]),
            str(raw["key"]),
            dict(raw.get("value") or {}),
            float(raw.get("created_at", 0.0)),
            float(raw.get("updated_at", 0.0)),
        )


def check_name(namespace: str, key: str) -> None:
    for what, value in (("namespace", namespace), ("key", key)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise InvalidArgument(
                f"record {what} {value!r}: use up to 200 letters, digits and _.:/@+-"
            )


class NamedRecords(Protocol):
    """The named-record part of the store contract."""

    def claim_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        """Create the record; Conflict when the name is taken."""
        ...

    def update_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        """Replace the value of an existing record; NotFound when there is none."""
        ...

    def get_record(self, namespace: str, key: str) -> NamedRecord:
        """The record; NotFound when there is none."""
        ...

    def list_records(self, namespace: str) -> list[NamedRecord]:
        """Every record of the namespace, by key."""
        ...

    def drop_record(self, namespace: str, key: str) -> NamedRecord:
        """Remove the record and return it; NotFound when there is none."""
        ...
