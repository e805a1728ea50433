"""The tolerant reader parses what aiokafka's parser refuses: header keys that are not UTF-8."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchBuilderPy

from broker.kafka import TopicPartition, header_key_bytes, undecodable
from broker.kafka._tolerant import read_partition

TP = TopicPartition("accord.ingress.wmp", 0)


class _RawKey(str):
    """A header key that writes bytes no UTF-8 text has: what a foreign client may send."""

    __slots__ = ()

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:  # noqa: ARG002
        return b"\xff\xfe-key"


def _batch(base_offset: int = 0) -> bytes:
    """One producer batch: a valid record, one with an undecodable header key, a valid one."""
    builder = _DefaultRecordBatchBuilderPy(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    builder.append(0, timestamp=1, key=None, value=b"before", headers=[("ok", b"1")])
    builder.append(
        1, timestamp=2, key=None, value=b"bad", headers=[("ok", b"1"), (_RawKey(), b"v")]
    )
    builder.append(2, timestamp=3, key=None, value=b"after", headers=[])
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")  # the broker assigns offsets; crc excludes them
    return bytes(raw)


def test_aiokafka_refuses_the_whole_batch_at_the_undecodable_key() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(DefaultRecordBatch(_batch()))


def test_every_record_of_the_batch_is_read_and_the_undecodable_one_is_marked() -> None:
    records, next_offset = read_partition(TP, _batch(40), None, 40, limit=100)
    assert [(r.offset, r.value) for r in records] == [(40, b"before"), (41, b"bad"), (42, b"after")]
    assert next_offset == 43
    [(ok, _), (key, value)] = records[1].headers
    assert (ok, undecodable(ok), value) == ("ok", False, b"v")
    assert undecodable(key)
    assert header_key_bytes(key) == b"\xff\xfe-key"  # its exact bytes, for the quarantine copy


def test_reading_starts_at_the_position_and_stops_at_the_limit() -> None:
    records, next_offset = read_partition(TP, _batch(40), None, 41, limit=1)
    assert [r.offset for r in records] == [41]
    assert next_offset == 42


def test_a_decodable_key_is_never_marked() -> None:
    assert not undecodable("x-accord-envelope")
    assert not undecodable("clé")  # non-ASCII UTF-8 is text like any other
