"""A record's signer is its own claim until its signature verifies: a record signed by a key
the keystore does not accept, or sealed by anyone but the broker, is reported and gone past,
never held. Else whoever can write to the delivery topic could stop every reader for good.
Only one naming the broker and a signing key this keystore has never heard of is parked as
well (tests/unit/sdk/test_subscriber_parked.py): it may be genuine, signed by a key not
imported yet.

Each case is followed by a genuine delivery, which must arrive.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import KemSuite
from broker.crypto import KemAlg
from broker.envelope import Sealer
from broker.envelope._wire import assemble_bundle, bundle_context, parse_bundle
from broker.keys import FileKeyStore
from broker.topics import SCHEMA_SHARED
from tests.unit.sdk.keyworld import (
    DAY,
    NOW,
    TOPIC,
    X25519,
    Clock,
    FakeKafka,
    Msg,
    eid,
    hub_keys,
    opened,
    rotate,
    sealed,
    subscriber,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> FileKeyStore:
    return hub_keys(tmp_path, clock)


def forged(keys: FileKeyStore, offset: int, *, signer_key_id: str | None = None) -> Msg:
    """A genuine delivery's copy whose bundle names a signer of the forger's choosing (random
    by default) under a signature of zeros: what anyone able to write to the topic can make."""
    good = sealed(keys, eid(900 + offset), offset)
    b = parse_bundle(good.headers[0][1])
    context = bundle_context(
        kem=KemAlg.X25519, sender=b.sender.encode(), recipient=b.recipient.encode(),
        dek_id=b.dek_id, created_at=b.created_at,
        signer_key_id=signer_key_id or os.urandom(16).hex(), recipient_key_id=b.recipient_key_id,
    )  # fmt: skip
    bundle = assemble_bundle(context, b.sealed_dek) + b"\x00" * 64
    return Msg(offset, good.value, [(good.headers[0][0], bundle)])


def other_party(tmp_path: Path, keys: FileKeyStore, party: str) -> FileKeyStore:
    """Another party's own keystore, which knows the hub's public keys."""
    store = FileKeyStore(tmp_path / party, create=True)
    store.ensure_party(party, kem=KemSuite.X25519)
    store.replace_public(keys.keys("hub-a"))
    return store


def sealed_by(store: FileKeyStore, sender: str, offset: int) -> Msg:
    record = Sealer(sender, store, X25519).seal(
        b"{}", event_id=eid(800 + offset), recipient="hub-a", schema=SCHEMA_SHARED, topic=TOPIC
    )
    return Msg(offset, record.value, list(record.headers))


async def _skipped_then_next_arrives(
    keys: FileKeyStore,
    first: Msg,
    tmp_path: Path,
    reason: str = "unknown-signer",
    *,
    parked: bool = False,
) -> None:
    kafka = FakeKafka([first, sealed(keys, eid(1), first.offset + 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with capture_logs() as logs:
            assert opened(await sub.poll(0)) == [eid(1)]  # no RecordKeyUnavailable
        assert sub.parked == int(parked)
    assert [(u.offset, u.reason, u.parked) for u in sub.unopenable] == [
        (first.offset, reason, parked)
    ]
    assert kafka.fake.committed == [first.offset + 2]
    event = "record_parked" if parked else "record_unopenable"
    lines = [e for e in logs if e["event"] == event]
    assert [e["log_level"] for e in lines] == ["error" if reason == "unknown-signer" else "warning"]


async def test_a_copy_naming_the_broker_and_an_unknown_signer_is_parked_and_gone_past(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    """It may be genuine, signed by a broker key not imported yet: kept, but it holds
    nothing."""
    await _skipped_then_next_arrives(keys, forged(keys, 0), tmp_path, parked=True)


async def test_a_record_another_keystore_sealed_as_another_party_is_reported_and_skipped(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    mallory = other_party(tmp_path, keys, "mallory")
    await _skipped_then_next_arrives(keys, sealed_by(mallory, "mallory", 0), tmp_path)


async def test_a_copy_naming_the_brokers_expired_signing_key_is_reported_and_skipped(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """An expired signing key's id is public: naming it proves nothing."""
    old = rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    clock.at = NOW
    await _skipped_then_next_arrives(keys, forged(keys, 0, signer_key_id=old), tmp_path)


async def test_an_old_genuine_record_written_again_after_its_signing_key_expired_is_skipped(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """An unchanged copy, at a new offset, of a record the broker signed before rotating and
    the reader opened then: a replay, reported and skipped, not held for its expired signer
    (the genuine record it copies was held, had it come unread)."""
    genuine = sealed(keys, eid(7), 0, at=NOW - 9 * DAY)
    async with subscriber(keys, FakeKafka([genuine]), tmp_path) as sub:
        assert opened(await sub.poll(0)) == [eid(7)]
    rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    clock.at = NOW
    copy = Msg(5, genuine.value, genuine.headers)
    await _skipped_then_next_arrives(keys, copy, tmp_path, reason="replay")


async def test_a_party_other_than_the_broker_sealing_to_a_revoked_key_is_not_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Signed by a party the keystore knows, sealed to the hub's revoked key: an own-key
    problem, but only the broker seals to recipients, so the record is at fault."""
    school = other_party(tmp_path, keys, "school-b")
    keys.replace_public([*keys.keys(), *school.keys("school-b")])
    revoked = sealed_by(school, "school-b", 0)
    keys.revoke(rotate(keys, clock, "hub-a", at=NOW, grace_days=7))
    await _skipped_then_next_arrives(keys, revoked, tmp_path, reason="bad-signature")
