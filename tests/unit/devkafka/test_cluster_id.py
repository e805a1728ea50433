"""KRaft cluster ids the storage tool accepts."""

from __future__ import annotations

import base64
import uuid

import pytest

from broker.devkafka import _broker


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id starting with '-' reads as an option to kafka-storage; such draws are redrawn."""
    dash = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=1)
    draws = iter([dash, plain])
    monkeypatch.setattr(_broker.uuid, "uuid4", lambda: next(draws))
    cid = _broker.new_cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22


def test_cluster_ids_are_22_url_safe_characters() -> None:
    ids = {_broker.new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
