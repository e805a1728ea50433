"""What a record's DEK bundle says is given only once its signature verifies under a live
signing key of the sender it names: the facts a reader's key hold rests on cannot be forged."""

from __future__ import annotations

import pytest

from broker.envelope import DEK_BUNDLE_HEADER, SignedBundle, signed_bundle
from broker.envelope._wire import parse_bundle
from broker.errors import EnvelopeError
from broker.keys import FileKeyStore
from tests.unit.envelope.conftest import T0, FakeClock, SealFn


def _bundle(seal: SealFn) -> bytes:
    [raw] = [v for k, v in seal().headers if k == DEK_BUNDLE_HEADER]
    return raw


def test_a_genuine_bundle_gives_its_sender_key_and_time(seal: SealFn, store: FileKeyStore) -> None:
    raw = _bundle(seal)
    got = signed_bundle(store, raw, now=T0)
    parsed = parse_bundle(raw)
    assert got == SignedBundle("wmp", parsed.recipient_key_id, parsed.created_at)


def test_any_signature_byte_flipped_gives_nothing(seal: SealFn, store: FileKeyStore) -> None:
    raw = _bundle(seal)
    for i in range(1, 65):  # the signature is the bundle's last 64 bytes
        tampered = bytearray(raw)
        tampered[-i] ^= 0x01
        assert signed_bundle(store, bytes(tampered), now=T0) is None


def test_a_signer_the_keystore_does_not_know_or_no_longer_accepts_gives_nothing(
    seal: SealFn, store: FileKeyStore, clock: FakeClock
) -> None:
    raw = _bundle(seal)
    signer = parse_bundle(raw).signer_key_id
    store.revoke(signer)
    assert signed_bundle(store, raw, now=clock()) is None
    empty = FileKeyStore(store.path.parent / "other", create=True, clock=clock)
    assert signed_bundle(empty, raw, now=clock()) is None


def test_no_bundle_at_all_is_an_envelope_error(store: FileKeyStore) -> None:
    with pytest.raises(EnvelopeError):
        signed_bundle(store, b"not a bundle", now=T0)
