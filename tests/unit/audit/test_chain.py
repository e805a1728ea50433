"""Hash chains of audit records: appending, checkpoints, and detecting every kind of tamper."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit import AuditKind, AuditRecord, ChainWriter, verify_chain, verify_truncation
from broker.errors import ChainBroken


class FakeAuditKey:
    """HMAC stands in for Ed25519 in unit tests; the real key is tested with the keystore."""

    key_id = "audit-test"

    def __init__(self, secret: bytes = b"k") -> None:
        self._secret = secret

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def verify(self, chain: str, key_id: str, data: bytes, signature: bytes) -> bool:  # noqa: ARG002  # the protocol's shape
        return key_id == self.key_id and hmac.compare_digest(self.sign(data), signature)


def _clock() -> datetime:
    _clock.t += timedelta(seconds=1)  # type: ignore[attr-defined]
    return _clock.t  # type: ignore[attr-defined,no-any-return]


_clock.t = datetime(2026, 11, 22, tzinfo=UTC)  # type: ignore[attr-defined]


def _chain(n: int = 12, checkpoint_every: int = 5) -> list[AuditRecord]:
    key = FakeAuditKey()
    writer = ChainWriter("ingress.wmp/0", clock=_clock)
    out: list[AuditRecord] = []
    for i in range(n):
        out.append(
            writer.append(
                AuditKind.DECIDED,
                event_id=f"e{i}",
                party="sandwell-coord",
                subject_keys=[f"sk{i}"],
                data={"outcome": "shared", "fields": ["subject.name"]},
            )
        )
        if (i + 1) % checkpoint_every == 0:
            out.append(writer.checkpoint(key))
    return out


def test_an_untouched_chain_verifies_and_reports_its_head() -> None:
    records = _chain()
    report = verify_chain(records, FakeAuditKey())
    assert report.records == len(records)
    assert report.head_seq == records[-1].seq
    assert report.head_hash == records[-1].hash
    assert report.last_checkpoint_seq == 11  # 5 decided, cp(5), 5 decided, cp(11), 2 decided


def test_modifying_a_record_is_detected_at_that_record() -> None:
    records = _chain()
    bad = records[3].model_copy(update={"party": "hub-tipton"})
    with pytest.raises(ChainBroken) as err:
        verify_chain([*records[:3], bad, *records[4:]], FakeAuditKey())
    assert err.value.seq == 3


def test_deleting_a_record_is_detected_where_the_gap_starts() -> None:
    records = _chain()
    with pytest.raises(ChainBroken) as err:
        verify_chain(records[:4] + records[5:], FakeAuditKey())
    assert err.value.seq == 4


def test_inserting_a_forged_record_is_detected() -> None:
    records = _chain()
    forged = records[4].model_copy(update={"event_id": "forged"})
    with pytest.raises(ChainBroken) as err:
        verify_chain([*records[:5], forged, *records[5:]], FakeAuditKey())
    assert err.value.seq == 5


def test_reordering_records_is_detected() -> None:
    records = _chain()
    swapped = [*records[:2], records[3], records[2], *records[4:]]
    with pytest.raises(ChainBroken) as err:
        verify_chain(swapped, FakeAuditKey())
    assert err.value.seq == 2


def test_a_rehashed_forgery_still_fails_at_the_next_link() -> None:
    """Recomputing a modified record's hash cannot help: the next prev_hash no longer matches."""
    records = _chain()
    changed = records[2].model_copy(update={"party": "hub-oldbury"})
    rehashed = changed.model_copy(update={"hash": changed.computed_hash()})
    with pytest.raises(ChainBroken) as err:
        verify_chain([*records[:2], rehashed, *records[3:]], FakeAuditKey())
    assert err.value.seq == 3


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    writer = ChainWriter("c", clock=_clock)
    records = [writer.append(AuditKind.RECEIVED, event_id="e") for _ in range(3)]
    records.append(writer.checkpoint(FakeAuditKey(b"someone-else")))
    with pytest.raises(ChainBroken) as err:
        verify_chain(records, FakeAuditKey())
    assert err.value.seq == 3
    assert "signature" in err.value.what


def test_truncation_below_a_signed_checkpoint_is_detected() -> None:
    records = _chain()
    report = verify_chain(records[:7], FakeAuditKey())  # the cut chain is internally sound
    with pytest.raises(ChainBroken) as err:
        verify_truncation(report, signed_head_seq=records[-1].seq)
    assert err.value.seq == 7


def test_a_writer_resumed_after_the_last_durable_record_continues_the_chain() -> None:
    records = _chain(4)
    resumed = ChainWriter.resume_after(records[-1], clock=_clock, chain="ingress.wmp/0")
    more = [resumed.append(AuditKind.DELIVERED, event_id="x") for _ in range(3)]
    assert verify_chain(records + more, FakeAuditKey()).records == 7


def test_audit_records_round_trip_through_their_bytes() -> None:
    rec = _chain(1)[0]
    again = AuditRecord.model_validate_json(rec.to_bytes())
    assert again == rec
    assert again.computed_hash() == rec.hash


def test_the_encoding_a_writer_returns_is_the_records_canonical_bytes() -> None:
    writer = ChainWriter("c", clock=_clock)
    encoded = writer.append_encoded(AuditKind.DECIDED, event_id="e", data={"x": [1]})
    record = AuditRecord.model_validate_json(encoded)
    assert encoded == record.to_bytes()
    assert record.computed_hash() == record.hash == writer.prev_hash


# The values RFC 8785 writes exactly and a parser reads back unchanged (test_jcs.py covers
# what the writer refuses outside them).
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not (f.is_integer() and 2**53 <= abs(f) < 1e21)
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(
    chain=st.text(min_size=1, max_size=30),
    kind=st.sampled_from(list(AuditKind)),
    event_id=st.none() | st.text(max_size=40),
    party=st.none() | st.text(max_size=20),
    keys=st.lists(st.text(max_size=34), max_size=3),
    data=st.dictionaries(st.text(max_size=10), _json_values, max_size=5),
    at=st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.timezones()),
    seq=st.integers(0, 2**40),
)
def test_the_fast_encoding_is_byte_identical_to_the_models(
    chain: str, kind: AuditKind, event_id: str | None, party: str | None, keys: list[str],
    data: dict[str, Any], at: datetime, seq: int,
) -> None:  # fmt: skip
    """The worker's pydantic-free encoding hashes and encodes exactly as AuditRecord does."""
    writer = ChainWriter(chain, clock=lambda: at, next_seq=seq, prev_hash="ab" * 32)
    encoded = writer.append_encoded(
        kind, event_id=event_id, party=party, subject_keys=keys, data=data
    )
    record = AuditRecord.model_validate_json(encoded)
    assert record.to_bytes() == encoded
    assert record.computed_hash() == record.hash
    # The log keeps UTC: the instant the clock gave, as UTC (compared in UTC, because an
    # aware local time inside a DST gap does not compare equal to its own UTC conversion).
    assert (record.seq, record.prev_hash, record.at) == (seq, "ab" * 32, at.astimezone(UTC))
