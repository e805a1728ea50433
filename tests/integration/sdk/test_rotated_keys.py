"""Through real Kafka: a delivery sealed to a recipient's key that was rotated out, and whose
grace has since ended, still opens; one sealed to a revoked key is never opened and never
committed past (the next subscriber of the group stops on it again)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.errors import RecordKeyUnavailable
from broker.keys import FileKeyStore
from broker.sdk import Subscriber
from broker.topics import deliver
from tests.integration.sdk.test_roundtrip import _delivery, produce, seal_delivery
from tests.kafka_helpers import clients

pytestmark = pytest.mark.usefixtures("sdk_topics")


def _keystore(path: Path, party: str) -> FileKeyStore:
    store = FileKeyStore(path, create=True)
    for principal in ("worker", party):
        store.ensure_party(principal)
    return store


async def _delivered(store: FileKeyStore, party: str, bootstrap: str) -> str:
    delivery = _delivery(str(uuid.uuid4()), party)
    sealed = seal_delivery(store, delivery)
    await produce(bootstrap, deliver(party), (sealed.value, sealed.headers))
    return delivery.event_id


def _subscriber(store: FileKeyStore, party: str, bootstrap: str, group: str, memory: Path) -> Any:
    return Subscriber(party, store, clients(bootstrap), group, replay_memory=memory)


async def test_a_delivery_sealed_before_the_recipients_rotation_opens_after_its_grace(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``accord keys rotate`` with a grace of seconds, the records on the topic sealed to the
    old key: after the grace the group still opens each, and commits past it only then."""
    party = "hub-r"
    store = _keystore(tmp_path / "keys", party)
    sent = [await _delivered(store, party, kafka_bootstrap) for _ in range(2)]
    [old] = [k for k in store.keys(party) if k.purpose.value == "encrypt"]
    store.rotate(party, grace=timedelta(seconds=2))
    await asyncio.sleep(2.5)
    rotated = store.public_key(old.key_id)
    assert rotated is not None
    assert not rotated.is_live_ts(time.time())  # expired: the envelope's plain rule refuses it

    group, memory = f"{party}.rotated-{uuid.uuid4().hex[:6]}", tmp_path / "replay.sqlite3"
    got: list[str] = []
    async with _subscriber(store, party, kafka_bootstrap, group, memory) as sub:
        for _ in range(10):  # a poll may come back empty while the group forms
            got += [r.message.event_id for r in await sub.poll(1.0, commit=False)]
            if len(got) >= len(sent):
                break
        await sub.commit()
    assert got == sent
    assert sub.unopenable == []
    # Committed: the group's next run starts after them.
    async with _subscriber(store, party, kafka_bootstrap, group, memory) as again:
        for _ in range(6):  # uncommitted, they would come again, and open
            assert await again.poll(1.0) == []


async def _poll_until_held(sub: Subscriber) -> None:
    for _ in range(10):  # a poll may come back empty while the group forms
        await sub.poll(1.0, commit=False)


async def test_a_delivery_sealed_to_a_revoked_key_is_not_opened_nor_committed_past(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    party = "hub-v"
    store = _keystore(tmp_path / "keys", party)
    await _delivered(store, party, kafka_bootstrap)
    [old] = [k for k in store.keys(party) if k.purpose.value == "encrypt"]
    store.rotate(party)
    store.revoke(old.key_id)

    group, memory = f"{party}.revoked-{uuid.uuid4().hex[:6]}", tmp_path / "replay.sqlite3"
    for _ in range(2):  # and again: the first stop committed nothing past it
        async with _subscriber(store, party, kafka_bootstrap, group, memory) as sub:
            with pytest.raises(RecordKeyUnavailable) as held:
                await _poll_until_held(sub)
            await sub.commit()
        assert held.value.key_id == old.key_id
        assert "revoked" in str(held.value)
        assert sub.unopenable == []
