"""Flip any byte of a sealed record or its bundle: opening fails with a typed error, always.

Every byte of every region is flipped (routing header, nonce, ciphertext body, tag, and each
field of the bundle); a flip must never open, and must raise a specific EnvelopeError
subclass (never the bare base class, never a library exception).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.envelope import Opener, SealedRecord
from broker.envelope._wire import parse_bundle, parse_record
from broker.errors import (
    BadSignature,
    EnvelopeError,
    KeyRejected,
    MalformedEnvelope,
    TamperedEnvelope,
    UnsupportedVersion,
    WrongRecipient,
)
from broker.keys import FileKeyStore
from tests.unit.envelope.conftest import FakeClock, SealFn

_HEADER_ERRORS = (
    MalformedEnvelope,
    UnsupportedVersion,
    WrongRecipient,
    TamperedEnvelope,
    KeyRejected,
)
_BUNDLE_ERRORS = (
    MalformedEnvelope,
    UnsupportedVersion,
    TamperedEnvelope,
    KeyRejected,
    BadSignature,
)


def _flip(data: bytes, i: int, mask: int = 0x01) -> bytes:
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]


def _must_fail(opener: Opener, value: bytes, bundle: bytes) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as info:
        opener.open(value, bundle)
    assert type(info.value) is not EnvelopeError  # always a specific subclass
    return info.value


def _regions(record: SealedRecord) -> dict[str, range]:
    _, ct_start = parse_record(record.value)
    n = len(record.value)
    return {
        "routing header": range(ct_start - 12),
        "nonce": range(ct_start - 12, ct_start),
        "ciphertext": range(ct_start, n - 16),
        "tag": range(n - 16, n),
    }


@pytest.mark.parametrize("mask", [0x01, 0x80])
@pytest.mark.parametrize("region", ["routing header", "nonce", "ciphertext", "tag"])
def test_flipping_any_byte_of_the_record_value_fails_typed(
    seal: SealFn, store: FileKeyStore, clock: FakeClock, region: str, mask: int
) -> None:
    warm, record = seal(b'{"summary":"synthetic"}'), seal(b'{"summary":"synthetic 2"}')
    opener = Opener("worker", store, clock=clock)
    opener.open(warm.value, warm.dek_bundle)  # the DEK is cached: the fast path is under test
    allowed = _HEADER_ERRORS if region == "routing header" else (TamperedEnvelope,)
    positions = _regions(record)[region]
    assert len(positions) > 0
    for i in positions:
        exc = _must_fail(opener, _flip(record.value, i, mask), record.dek_bundle)
        assert isinstance(exc, allowed), (region, i, type(exc))
    assert opener.open(record.value, record.dek_bundle).payload  # the original still opens


def test_truncating_the_record_value_anywhere_fails_typed(seal: SealFn, opener: Opener) -> None:
    record = seal(b"payload")
    for n in range(len(record.value)):
        _must_fail(opener, record.value[:n], record.dek_bundle)


def _bundle_regions(bundle: bytes) -> dict[str, range]:
    parsed = parse_bundle(bundle)
    ctx, signed = len(parsed.context), len(parsed.signed)
    ids = 11 + 1 + len(parsed.sender) + 1 + len(parsed.recipient)
    return {
        "magic+version+suite": range(11),
        "sender+recipient": range(11, ids),
        "dek id+created_at": range(ids, ids + 24),
        "key ids": range(ids + 24, ctx),
        "sealed DEK": range(ctx, signed),
        "signature": range(signed, len(bundle)),
    }


@pytest.mark.parametrize(
    "region",
    ["magic+version+suite", "sender+recipient", "dek id+created_at", "key ids", "sealed DEK"],
)
def test_flipping_any_byte_of_the_bundle_fails_typed(
    seal: SealFn, store: FileKeyStore, clock: FakeClock, region: str
) -> None:
    record = seal(b"x")
    positions = _bundle_regions(record.dek_bundle)[region]
    # The sealed DEK is ~1.2 KB; every 7th byte plus both ends keeps the test quick.
    picked = sorted({*positions[::7], positions[0], positions[-1]})
    for i in picked:
        opener = Opener("worker", store, clock=clock)
        exc = _must_fail(opener, record.value, _flip(record.dek_bundle, i))
        assert isinstance(exc, _BUNDLE_ERRORS), (region, i, type(exc))


def test_flipping_any_signature_byte_is_a_bad_signature(
    seal: SealFn, store: FileKeyStore, clock: FakeClock
) -> None:
    record = seal(b"x")
    for i in _bundle_regions(record.dek_bundle)["signature"]:
        opener = Opener("worker", store, clock=clock)
        exc = _must_fail(opener, record.value, _flip(record.dek_bundle, i))
        assert isinstance(exc, BadSignature)


def test_a_tampered_bundle_is_refused_even_when_the_dek_is_cached(
    seal: SealFn, opener: Opener
) -> None:
    first, second = seal(b"1"), seal(b"2")
    opener.open(first.value, first.dek_bundle)
    with pytest.raises(BadSignature):
        opener.open(second.value, _flip(second.dek_bundle, len(second.dek_bundle) - 1))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048), bundle=st.one_of(st.none(), st.binary(max_size=2048)))
def test_random_bytes_raise_only_envelope_errors(
    opener: Opener, data: bytes, bundle: bytes | None
) -> None:
    for value in (data, b"ACRD\x01" + data):
        with pytest.raises(EnvelopeError) as info:
            opener.open(value, bundle)
        assert type(info.value) is not EnvelopeError


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(["value", "bundle"]),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "delete"]),
            st.integers(min_value=0, max_value=4000),
            st.integers(min_value=1, max_value=255),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_records_raise_only_envelope_errors(
    seal: SealFn, opener: Opener, target: str, edits: list[tuple[str, int, int]]
) -> None:
    record = seal(b'{"summary":"synthetic"}')
    value, bundle = bytearray(record.value), bytearray(record.dek_bundle)
    buf = value if target == "value" else bundle
    for op, pos, byte in edits:
        i = pos % max(len(buf), 1)
        if op == "flip" and buf:
            buf[i] ^= byte
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf.insert(i, byte)
        elif buf:
            del buf[i]
    if bytes(value) == record.value and bytes(bundle) == record.dek_bundle:
        return  # the edits cancelled out
    with pytest.raises(EnvelopeError) as info:
        opener.open(bytes(value), bytes(bundle))
    assert type(info.value) is not EnvelopeError
