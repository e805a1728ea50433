"""The worker's fast audit encoding is RFC 8785 (JCS), byte for byte, and hashes as specified.

``schemas/audit-chain.md`` defines a record's bytes as ``rfc8785.dumps`` of the record and its
hash as SHA-256 over a domain label and the JCS of every other member; an auditor recomputes
both from the parsed JSON alone. ``ChainWriter.append_encoded`` writes the bytes by hand for
speed, so it is held to that definition here, over arbitrary strings and data.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from broker.audit import AuditKind, AuditRecord, ChainWriter, record_hash
from broker.audit._chain import checkpoint_message

AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RECORD_DOMAIN = b"accord/audit/v1\x00"

# Characters where JSON encoders disagree: controls (escaped, some by name), quote, backslash,
# DEL and the line separators (not escaped by JCS), the top of the BMP and beyond it (which
# sort differently by UTF-16 code unit and by code point).
_AWKWARD = '\x00\x01\x08\x09\x0a\x0c\x0d\x1f"\\/\x7f\u2028\u2029\ue000\uffff\U00010000\U0001f600'
_chars = st.sampled_from(_AWKWARD) | st.characters(exclude_categories=("Cs",))
_text = st.text(_chars, max_size=12)
_safe_int = st.integers(-(2**53) + 1, 2**53 - 1)
# Floats that JCS can write and a parser gives back unchanged (an integral float of 2**53 or
# more reads back as an integer no canonicaliser accepts, so the writer refuses it; see below).
_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not (f.is_integer() and 2**53 <= abs(f) < 1e21)
)
_scalars = st.none() | st.booleans() | _safe_int | _text
_values = st.recursive(
    _scalars | _floats,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=16,
)


def _spec_hash(parsed: dict[str, Any]) -> str:
    body = {k: v for k, v in parsed.items() if k != "hash"}
    return hashlib.sha256(RECORD_DOMAIN + rfc8785.dumps(body)).hexdigest()


def _append(data: Any, **fields: Any) -> tuple[ChainWriter, bytes]:
    writer = ChainWriter(fields.pop("chain", "worker:w1"), clock=lambda: AT)
    return writer, writer.append_encoded(fields.pop("kind", AuditKind.DECIDED), data=data, **fields)


@given(
    chain=st.text(_chars, min_size=1, max_size=30),
    kind=st.sampled_from(list(AuditKind)),
    event_id=st.none() | _text,
    party=st.none() | _text,
    keys=st.lists(_text, max_size=3),
    data=st.dictionaries(_text, _values, max_size=6),
    at=st.datetimes(timezones=st.just(UTC)) | st.datetimes(timezones=st.timezones()),
    seq=st.integers(0, 2**53 - 1),
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_fast_encoding_is_rfc8785_of_itself_and_hashes_as_the_spec_says(
    chain: str, kind: AuditKind, event_id: str | None, party: str | None, keys: list[str],
    data: dict[str, Any], at: datetime, seq: int, prev: str,
) -> None:  # fmt: skip
    writer = ChainWriter(chain, clock=lambda: at, next_seq=seq, prev_hash=prev)
    encoded = writer.append_encoded(
        kind, event_id=event_id, party=party, subject_keys=keys, data=data
    )
    parsed = json.loads(encoded)
    assert encoded == rfc8785.dumps(parsed)
    assert parsed["hash"] == _spec_hash(parsed) == writer.prev_hash
    assert (parsed["seq"], parsed["prev_hash"], parsed["data"]) == (seq, prev, data)
    record = AuditRecord.model_validate_json(encoded)
    assert record.to_bytes() == encoded
    assert record.computed_hash() == record.hash


@given(data=st.dictionaries(_text, _scalars, max_size=6))
def test_a_record_hash_is_sha256_of_the_domain_label_and_the_jcs_body(
    data: dict[str, Any],
) -> None:
    _, encoded = _append(data, event_id="e1", party="hub-a", subject_keys=["sk1"])
    body = AuditRecord.model_validate_json(encoded).body()
    assert record_hash(body) == hashlib.sha256(RECORD_DOMAIN + rfc8785.dumps(body)).hexdigest()


def test_a_float_is_written_as_jcs_writes_it_not_as_python_does() -> None:
    _, encoded = _append({"ratio": 1e-05, "big": 1e21, "half": 0.5, "whole": 2.0})
    assert b'"data":{"big":1e+21,"half":0.5,"ratio":0.00001,"whole":2}' in encoded
    assert encoded == rfc8785.dumps(json.loads(encoded))


def test_object_keys_are_sorted_by_utf16_code_unit_not_by_code_point() -> None:
    _, encoded = _append({"\uffff": 1, "\U0001f600": 2, "a": 3})
    assert '"data":{"a":3,"\U0001f600":2,"\uffff":1}'.encode() in encoded
    assert encoded == rfc8785.dumps(json.loads(encoded))


def test_strings_escape_controls_quotes_and_backslashes_as_jcs_does() -> None:
    value = '\x00\x1f\b\t\n\f\r"\\/\x7f\u2028é\U0001f600'
    _, encoded = _append({"s": value}, party=value, subject_keys=[value])
    expected = '"\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\/\x7f\u2028é\U0001f600"'.encode()
    assert encoded.count(expected) == 3
    assert encoded == rfc8785.dumps(json.loads(encoded))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"n": 2**53}, id="integer-beyond-the-exact-range-of-a-double"),
        pytest.param({"n": [-(2**53)]}, id="negative-integer-beyond-it-nested"),
        pytest.param({"x": 1e16}, id="integral-float-that-reads-back-as-an-unsafe-integer"),
        pytest.param({"x": math.nan}, id="nan"),
        pytest.param({"x": math.inf}, id="infinity"),
        pytest.param({"d": {1: "a"}}, id="object-key-not-a-string"),
        pytest.param({"t": AT}, id="value-not-json"),
    ],
)
def test_data_rfc8785_cannot_write_exactly_is_refused_and_the_chain_does_not_move(
    data: dict[str, Any],
) -> None:
    writer = ChainWriter("worker:w1", clock=lambda: AT)
    with pytest.raises(ValueError, match="audit data"):
        writer.append_encoded(AuditKind.DECIDED, data=data)
    assert (writer.next_seq, writer.prev_hash) == (0, "0" * 64)


def test_the_checkpoint_signing_input_is_the_domain_label_and_jcs_of_chain_seq_hash() -> None:
    head = "ab" * 32
    message = checkpoint_message("console:hôte-1", 41, head)
    assert message == b"accord/audit-checkpoint/v1\x00" + rfc8785.dumps(
        {"chain": "console:hôte-1", "seq": 41, "hash": head}
    )
    assert message.endswith(f'{{"chain":"console:hôte-1","hash":"{head}","seq":41}}'.encode())


# Clear of the ends of datetime's range, where moving a time or changing its zone overflows.
_EARLY, _LATE = datetime(1900, 1, 2), datetime(9999, 12, 30)  # noqa: DTZ001  # hypothesis's bounds


@given(
    times=st.lists(
        st.datetimes(_EARLY, _LATE, timezones=st.just(UTC) | st.timezones()),
        min_size=1,
        max_size=6,
    ),
    spread=st.lists(st.integers(0, 1_999_999), max_size=6),
)
def test_each_records_time_is_its_own_whatever_the_record_before(
    times: list[datetime], spread: list[int]
) -> None:
    """The writer keeps the text of the last second it wrote; a record in the same second, the
    next, another day or another zone, at a whole second or not, still carries its own time as
    pydantic writes it."""
    base = times[0]
    times += [base + timedelta(microseconds=us) for us in spread]  # same second, and the next
    clock = iter(times)
    writer = ChainWriter("worker:w1", clock=lambda: next(clock))
    for at in times:
        record = AuditRecord.model_validate_json(writer.append_encoded(AuditKind.RECEIVED))
        assert record.at == at.astimezone(UTC)  # not ==: a time in a fold or gap differs (PEP 495)
        assert record.to_bytes() == rfc8785.dumps(record.model_dump(mode="json"))


def test_a_time_in_the_same_second_of_another_minute_day_or_zone_is_its_own() -> None:
    t = datetime(2026, 12, 7, 10, 55, 59, 123456, tzinfo=UTC)
    india = timezone(timedelta(hours=5, minutes=30))
    times = [t, t.replace(microsecond=0), t + timedelta(minutes=1), t + timedelta(hours=1),
             t + timedelta(days=1), t + timedelta(days=31), t + timedelta(days=365), t,
             t.astimezone(india), t - timedelta(seconds=1)]  # fmt: skip
    clock = iter(times)
    writer = ChainWriter("worker:w1", clock=lambda: next(clock))
    written = [json.loads(writer.append_encoded(AuditKind.RECEIVED))["at"] for _ in times]
    assert written == [f"{at.astimezone(UTC).isoformat()[:-6]}Z" for at in times]
    assert written[:2] == ["2026-12-07T10:55:59.123456Z", "2026-12-07T10:55:59Z"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"data": {"s": "a\ud800b"}}, id="in-a-value"),
        pytest.param({"data": {"list": ["a", "\udfff"]}}, id="in-a-list"),
        pytest.param({"data": {"\ud800": 1}}, id="in-a-key"),
        pytest.param({"subject_keys": ["k1", "\ud800"]}, id="in-a-subject-key"),
    ],
)
def test_a_lone_surrogate_is_refused_and_the_chain_does_not_move(fields: dict[str, Any]) -> None:
    """No UTF-8 holds one: the record is refused wherever it sits, as before orjson wrote
    plain data and subject keys, and the next record chains on from the last one written."""
    writer = ChainWriter("worker:w1", clock=lambda: AT)
    with pytest.raises(UnicodeEncodeError):
        writer.append_encoded(AuditKind.DECIDED, **fields)
    assert (writer.next_seq, writer.prev_hash) == (0, "0" * 64)


class _Str(str):
    """A ``str`` subclass: orjson writes one as an item, and refuses one as a key."""


# Keys either side of the BMP's end, where UTF-16 and code point order part: keys up to U+FFFF
# go to orjson (its code point sort is JCS's there), keys beyond it to the JCS encoder.
_NEAR_FFFF = "\ud7ff\ue000\ufeff\ufffe\uffff\U00010000\U0001f600"
_bmp_chars = st.sampled_from(_AWKWARD.replace("\U00010000", "").replace("\U0001f600", ""))
_bmp_key = st.text(
    _bmp_chars
    | st.sampled_from(_NEAR_FFFF[:5])
    | st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)),
    max_size=6,
)
_far_key = st.text(st.sampled_from(_NEAR_FFFF), min_size=1, max_size=3)
# No floats: every number is one JCS and orjson spell alike. A str subclass sits in arrays
# of strings, where the writer's check admits it (elsewhere it goes to the JCS encoder).
_plain_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(_text | _text.map(_Str), max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_bmp_key, inner, max_size=5)
        | st.dictionaries(_bmp_key, inner, min_size=2, max_size=5).map(
            lambda d: dict(reversed(d.items()))  # keys out of order, to be sorted
        )
    ),
    max_leaves=16,
)
_plain_data = st.dictionaries(_bmp_key, _plain_values, max_size=6)


@given(
    # Three in four with keys up to U+FFFF (orjson writes them), the rest with one beyond it.
    data=st.one_of(
        _plain_data,
        _plain_data,
        _plain_data,
        st.tuples(_plain_data, _far_key, _plain_values).map(lambda t: {**t[0], t[1]: t[2]}),
    ),
    keys=st.lists(_text | _text.map(_Str), max_size=3) | st.lists(_text, max_size=3).map(tuple),
)
def test_plain_data_and_subject_keys_are_written_byte_for_byte_as_rfc8785_writes_them(
    data: dict[str, Any], keys: list[str] | tuple[str, ...]
) -> None:
    """Float-free data (nested arrays, tuples and objects, keys in any insertion order, either
    side of U+FFFF, ``str`` subclasses) is what ``rfc8785`` writes of the very same values,
    which the writer mostly hands to orjson."""
    _, encoded = _append(data, subject_keys=keys)
    parsed = json.loads(encoded)
    expected = rfc8785.dumps({**parsed, "data": data, "subject_keys": keys})
    assert encoded == expected


def _next(t: datetime, field: str) -> datetime:
    return t.replace(**{field: getattr(t, field) + 1})


@pytest.mark.parametrize("field", ["second", "minute", "hour", "day", "month", "year"])
@pytest.mark.parametrize("us", [0, 250_000])
def test_a_time_differing_from_the_last_in_one_field_only_is_its_own(field: str, us: int) -> None:
    """The next record's second is the last one's with one field moved on (the next day at the
    same hh:mm:ss, the next month, the next year...): it is written with its own text."""
    t = datetime(2026, 11, 21, 8, 30, 15, us, tzinfo=UTC)
    times = [t, _next(t, field), t]
    clock = iter(times)
    writer = ChainWriter("worker:w1", clock=lambda: next(clock))
    written = [json.loads(writer.append_encoded(AuditKind.RECEIVED))["at"] for _ in times]
    assert written == [f"{at.isoformat()[:-6]}Z" for at in times]


def test_a_writer_keeps_its_own_last_second_whatever_another_writes() -> None:
    """Two writers (two workers' chains, or threads) taking turns in different seconds each
    write their own times: what one keeps of its last second is not the other's."""
    t = datetime(2026, 11, 21, 8, 30, 15, tzinfo=UTC)
    later = t + timedelta(days=1)
    first = ChainWriter("worker:w1", clock=lambda: t)
    second = ChainWriter("worker:w2", clock=lambda: later)
    written = []
    for _ in range(2):
        for writer in (first, second):
            written.append(json.loads(writer.append_encoded(AuditKind.RECEIVED))["at"])
    assert written == ["2026-11-21T08:30:15Z", "2026-11-22T08:30:15Z"] * 2
