"""Spans for the store's named records (``orchestrator.store.named``): a claim, an
update and a drop are each a span; reads are not recorded, as for the other queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.store.base import Store
from orchestrator.store.named import NamedRecord

T = TypeVar("T")


class TracedNamedRecords:
    """Mixed into TracedStore, whose inner store and ``_timed`` it uses."""

    inner: Store

    def _timed(self, name: str, attributes: dict[str, Any], call: Callable[[], T]) -> T:
        raise NotImplementedError  # TracedStore's

    @staticmethod
    def _named(namespace: str, key: str) -> dict[str, Any]:
        return {"swarm.record.namespace": namespace, "swarm.record.key": key}

    def claim_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        return self._timed(
            "swarm.record.claim",
            self._named(namespace, key),
            lambda: self.inner.claim_record(namespace, key, value),
        )

    def update_record(self, namespace: str, key: str, value: dict[str, Any]) -> NamedRecord:
        return self._timed(
            "swarm.record.update",
            self._named(namespace, key),
            lambda: self.inner.update_record(namespace, key, value),
        )

    def get_record(self, namespace: str, key: str) -> NamedRecord:
        return self.inner.get_record(namespace, key)

    def list_records(self, namespace: str) -> list[NamedRecord]:
        return self.inner.list_records(namespace)

    def drop_record(self, namespace: str, key: str) -> NamedRecord:
        return self._timed(
            "swarm.record.drop",
            self._named(namespace, key),
            lambda: self.inner.drop_record(namespace, key),
        )
