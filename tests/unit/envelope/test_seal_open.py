"""Sealing and opening: round trips, recipients, keys' status, replay, DEK rotation, nonces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.config import EnvelopeSettings, KemSuite
from broker.envelope import (
    DEK_BUNDLE_HEADER,
    InMemoryReplayGuard,
    KeyPurpose,
    Opener,
    Sealer,
    canonical_json,
    read_header,
)
from broker.errors import (
    EnvelopeError,
    KeyRejected,
    ReplayDetected,
    TamperedEnvelope,
    WrongRecipient,
)
from broker.keys import FileKeyStore
from tests.unit.envelope.conftest import INGRESS, SCHEMA, FakeClock, SealFn


def test_round_trip_recovers_payload_and_routing_header(seal: SealFn, opener: Opener) -> None:
    payload = canonical_json({"summary": "synthetic — ünïcode", "need_level": 3})
    record = seal(payload, event_id="ev-1")
    opened = opener.open(record.value, record.dek_bundle, topic=INGRESS)
    assert opened.payload == payload
    assert (opened.event_id, opened.sender, opened.schema, opened.topic) == (
        "ev-1",
        "wmp",
        SCHEMA,
        INGRESS,
    )
    assert opened.header.recipient == "worker"


def test_nothing_readable_in_value_or_bundle(seal: SealFn) -> None:
    secret = b"Synthetic-Surname 9992310073 DY4 7AA"
    record = seal(secret)
    assert secret not in record.value
    assert b"Synthetic" not in record.value + record.dek_bundle
    assert b"9992310073" not in record.value + record.dek_bundle


def test_kafka_headers_carry_the_bundle_and_open_kafka_uses_them(
    seal: SealFn, opener: Opener
) -> None:
    record = seal(b"x")
    assert record.headers == [(DEK_BUNDLE_HEADER, record.dek_bundle)]
    headers = [("other", b"1"), *record.headers]
    assert opener.open_kafka(record.value, headers, topic=INGRESS).payload == b"x"


def test_two_bundle_headers_are_malformed(seal: SealFn, opener: Opener) -> None:
    record = seal(b"x")
    with pytest.raises(EnvelopeError):
        opener.open_kafka(record.value, record.headers * 2)


def test_x25519_suite_round_trips(tmp_path: Path, clock: FakeClock) -> None:
    ks = FileKeyStore(tmp_path / "k", create=True, clock=clock)
    ks.ensure_party("wmp", kem=KemSuite.X25519)
    ks.ensure_party("worker", kem=KemSuite.X25519)
    sealer = Sealer("wmp", ks, EnvelopeSettings(kem=KemSuite.X25519), clock=clock)
    rec = sealer.seal(b"p", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)
    assert Opener("worker", ks, clock=clock).open(rec.value, rec.dek_bundle).payload == b"p"


def test_no_downgrade_to_x25519_when_hybrid_is_configured(tmp_path: Path) -> None:
    ks = FileKeyStore(tmp_path / "k", create=True)
    ks.ensure_party("wmp")
    ks.ensure_party("worker", kem=KemSuite.X25519)
    sealer = Sealer("wmp", ks, EnvelopeSettings(kem=KemSuite.HYBRID))
    with pytest.raises(KeyRejected):
        sealer.seal(b"p", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)


def test_sealing_to_an_unknown_party_is_refused(seal: SealFn) -> None:
    with pytest.raises(KeyRejected):
        seal(b"x", recipient="nobody")


@pytest.mark.parametrize("field", ["event_id", "schema", "topic", "recipient"])
def test_invalid_identifier_is_refused_naming_the_field(seal: SealFn, field: str) -> None:
    with pytest.raises(EnvelopeError, match=field):
        seal(b"x", **{field: "has space"})


def test_another_party_cannot_open(seal: SealFn, store: FileKeyStore, clock: FakeClock) -> None:
    record = seal(b"x")
    with pytest.raises(WrongRecipient):
        Opener("swbh", store, clock=clock).open(record.value, record.dek_bundle)


def test_relabelling_the_recipient_does_not_help(
    seal: SealFn, store: FileKeyStore, clock: FakeClock
) -> None:
    record = seal(b"x")
    forged = record.value.replace(b"\x06worker", b"\x04swbh", 1)
    with pytest.raises(TamperedEnvelope):
        Opener("swbh", store, clock=clock).open(forged, record.dek_bundle)


def test_a_store_without_the_private_key_cannot_open(
    seal: SealFn, store: FileKeyStore, tmp_path: Path, clock: FakeClock
) -> None:
    record = seal(b"x")
    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    worker_key = store.current_encryption_key("worker").key_id
    (copy / "private" / f"{worker_key}.key").unlink()
    with pytest.raises(KeyRejected):
        Opener("worker", FileKeyStore(copy, clock=clock), clock=clock).open(
            record.value, record.dek_bundle
        )


def test_record_on_the_wrong_topic_is_refused(seal: SealFn, opener: Opener) -> None:
    record = seal(b"x")
    with pytest.raises(WrongRecipient):
        opener.open(record.value, record.dek_bundle, topic="accord.ingress.swbh")


def test_cached_dek_opens_a_record_without_its_bundle(seal: SealFn, opener: Opener) -> None:
    first, second = seal(b"1"), seal(b"2")
    with pytest.raises(KeyRejected):
        opener.open(second.value)  # nothing cached yet
    opener.open(first.value, first.dek_bundle)
    assert opener.open(second.value).payload == b"2"


def test_a_bundle_of_another_dek_is_refused(seal: SealFn, sealer: Sealer, opener: Opener) -> None:
    a = seal(b"a")
    sealer.rotate()
    b = seal(b"b")
    assert a.header.dek_id != b.header.dek_id
    with pytest.raises(TamperedEnvelope):
        opener.open(a.value, b.dek_bundle)


def test_replay_of_the_same_event_id_is_detected(seal: SealFn, opener: Opener) -> None:
    record = seal(b"x")
    opener.open(record.value, record.dek_bundle)
    with pytest.raises(ReplayDetected):
        opener.open(record.value, record.dek_bundle)
    again = seal(b"different payload", event_id=record.header.event_id)
    with pytest.raises(ReplayDetected):
        opener.open(again.value, again.dek_bundle)


def test_a_failed_open_does_not_burn_the_event_id(seal: SealFn, opener: Opener) -> None:
    record = seal(b"x")
    with pytest.raises(TamperedEnvelope):
        opener.open(record.value[:-1] + bytes([record.value[-1] ^ 1]), record.dek_bundle)
    assert opener.open(record.value, record.dek_bundle).payload == b"x"


def test_in_memory_replay_guard_is_bounded() -> None:
    guard = InMemoryReplayGuard(capacity=2)
    assert guard.first_sighting("a")
    assert guard.first_sighting("b")
    assert not guard.first_sighting("a")
    assert guard.first_sighting("c")  # evicts the least recently seen ("b")
    assert len(guard) == 2
    assert guard.first_sighting("b")


def test_replay_guard_is_pluggable(seal: SealFn, store: FileKeyStore, clock: FakeClock) -> None:
    seen: list[str] = []

    class Recording:
        def first_sighting(self, event_id: str) -> bool:
            seen.append(event_id)
            return False

    record = seal(b"x")
    with pytest.raises(ReplayDetected):
        Opener("worker", store, replay_guard=Recording(), clock=clock).open(
            record.value, record.dek_bundle
        )
    assert seen == [record.header.event_id]


# Key status: revoked, retired, rotated, expired.


def test_revoked_sender_key_is_refused_even_for_a_cached_dek(
    seal: SealFn, opener: Opener, store: FileKeyStore
) -> None:
    first, second = seal(b"1"), seal(b"2")
    opener.open(first.value, first.dek_bundle)
    store.revoke(store.current_signing_key("wmp").info.key_id)
    store._checked_at = 0.0  # skip the one-second reload throttle
    with pytest.raises(KeyRejected):
        opener.open(second.value, second.dek_bundle)


def test_revoked_sender_key_cannot_seal(seal: SealFn, store: FileKeyStore) -> None:
    store.revoke(store.current_signing_key("wmp").info.key_id)
    with pytest.raises(KeyRejected):
        seal(b"x")


def test_revoked_recipient_key_is_refused(
    seal: SealFn, opener: Opener, store: FileKeyStore
) -> None:
    record = seal(b"x")
    store.revoke(store.current_encryption_key("worker").key_id)
    with pytest.raises(KeyRejected):
        opener.open(record.value, record.dek_bundle)


def test_rotation_new_keys_seal_old_records_open_until_grace_ends(
    seal: SealFn, opener: Opener, store: FileKeyStore, clock: FakeClock
) -> None:
    from datetime import timedelta

    old_record = seal(b"old")
    old_signer = store.current_signing_key("wmp").info.key_id
    store.rotate("wmp", grace=timedelta(hours=1))
    store.rotate("worker", grace=timedelta(hours=1))
    new_record = seal(b"new")
    assert new_record.header.dek_id != old_record.header.dek_id  # rotation forced a new DEK
    assert opener.open(new_record.value, new_record.dek_bundle).signer_key_id != old_signer
    assert opener.open(old_record.value, old_record.dek_bundle).payload == b"old"
    clock.advance(3600)
    newer = seal(b"newer")
    assert opener.open(newer.value, newer.dek_bundle).payload == b"newer"
    with pytest.raises(KeyRejected):  # the grace is over: the old keys have expired
        Opener("worker", store, clock=clock).open(old_record.value, old_record.dek_bundle)


def test_retired_key_is_refused(seal: SealFn, store: FileKeyStore, clock: FakeClock) -> None:
    record = seal(b"x")
    old_key = store.current_encryption_key("worker").key_id
    store.rotate("worker", purposes=[KeyPurpose.ENCRYPT])
    assert Opener("worker", store, clock=clock).open(record.value, record.dek_bundle)
    store.retire(old_key)
    with pytest.raises(KeyRejected):
        Opener("worker", store, clock=clock).open(record.value, record.dek_bundle)


def test_expired_key_cannot_seal(tmp_path: Path, clock: FakeClock) -> None:
    from datetime import UTC, datetime

    ks = FileKeyStore(tmp_path / "k", create=True, clock=clock)
    ks.ensure_party("wmp", not_after=datetime.fromtimestamp(clock.now + 10, UTC))
    ks.ensure_party("worker")
    sealer = Sealer("wmp", ks, clock=clock)
    sealer.seal(b"x", event_id="a", recipient="worker", schema=SCHEMA, topic=INGRESS)
    clock.advance(10)
    with pytest.raises(KeyRejected):
        sealer.seal(b"x", event_id="b", recipient="worker", schema=SCHEMA, topic=INGRESS)


# DEK reuse, rotation and nonces.


def test_dek_rotates_after_n_records(store: FileKeyStore, clock: FakeClock) -> None:
    sealer = Sealer("wmp", store, EnvelopeSettings(dek_max_records=3), clock=clock)
    recs = [
        sealer.seal(b"x", event_id=f"e{i}", recipient="worker", schema=SCHEMA, topic=INGRESS)
        for i in range(7)
    ]
    ids = [r.header.dek_id for r in recs]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert ids[3] == ids[4] == ids[5] != ids[6]
    assert len({ids[0], ids[3], ids[6]}) == 3
    assert recs[0].dek_bundle == recs[2].dek_bundle != recs[3].dek_bundle


def test_dek_rotates_after_t_seconds(store: FileKeyStore, clock: FakeClock) -> None:
    sealer = Sealer("wmp", store, EnvelopeSettings(dek_max_seconds=60), clock=clock)

    def dek() -> bytes:
        rec = sealer.seal(b"x", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)
        return rec.header.dek_id

    first = dek()
    clock.advance(59.9)
    assert dek() == first
    clock.advance(0.1)
    second = dek()
    assert second != first
    clock.advance(-5)  # a clock stepping backwards must not extend a DEK's life
    assert dek() != second


def test_each_recipient_has_its_own_dek(sealer: Sealer) -> None:
    a = sealer.seal(b"x", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)
    b = sealer.seal(b"x", event_id="e", recipient="swbh", schema=SCHEMA, topic="accord.t")
    assert a.header.dek_id != b.header.dek_id


def test_nonces_never_repeat_under_one_dek(store: FileKeyStore, clock: FakeClock) -> None:
    sealer = Sealer("wmp", store, EnvelopeSettings(dek_max_records=50), clock=clock)
    pairs = [
        (r.header.dek_id, r.header.nonce)
        for r in (
            sealer.seal(b"x", event_id=f"e{i}", recipient=rcp, schema=SCHEMA, topic=INGRESS)
            for i in range(200)
            for rcp in ("worker", "swbh")
        )
    ]
    assert len(set(pairs)) == len(pairs)
    first_dek = [n for d, n in pairs if d == pairs[0][0]]
    assert first_dek[:3] == [bytes(11) + b"\x00", bytes(11) + b"\x01", bytes(11) + b"\x02"]


def test_a_forked_process_gets_a_new_dek(sealer: Sealer, monkeypatch: pytest.MonkeyPatch) -> None:
    import broker.envelope._seal as seal_module

    a = sealer.seal(b"x", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)
    real = seal_module.os.getpid()
    monkeypatch.setattr(seal_module.os, "getpid", lambda: real + 1)
    b = sealer.seal(b"x", event_id="e", recipient="worker", schema=SCHEMA, topic=INGRESS)
    assert a.header.dek_id != b.header.dek_id


def test_read_header_does_not_need_keys(seal: SealFn) -> None:
    record = seal(b"x", event_id="ev-9")
    header = read_header(record.value)
    assert (header.event_id, header.sender, header.recipient) == ("ev-9", "wmp", "worker")


def test_error_messages_are_fixed_and_reveal_nothing(seal: SealFn, opener: Opener) -> None:
    record = seal(b"SECRET-PAYLOAD")
    with pytest.raises(TamperedEnvelope) as info:
        opener.open(record.value[:-1] + bytes([record.value[-1] ^ 1]), record.dek_bundle)
    assert str(info.value) == TamperedEnvelope.__doc__
    assert info.value.__cause__ is not None  # the cryptography exception is chained, not shown
