"""Reading a partition whose records aiokafka cannot parse: a header key that is not UTF-8.

Kafka's broker stores any bytes as a header key, but aiokafka (0.14, C and Python parsers
alike) decodes every key as UTF-8 while it iterates a fetched batch, and raises
``UnicodeDecodeError`` out of ``getmany``. Every later fetch of that partition meets the same
record, and since a batch is parsed from its start, seeking past the record does not help
either: the records after it in its producer batch stay unreadable too.

So on that error the caller reads the partitions again here, by a plain Fetch request, and
parses them with aiokafka's pure-Python record classes, except that a header key is decoded
with ``surrogateescape``: each undecodable byte becomes a lone surrogate, which no decoded
UTF-8 text contains, so the key marks its record (:func:`undecodable`) and still gives back
its exact bytes. aiokafka's own ``PartitionRecords`` does the rest (read_committed: aborted
transactions and control batches skipped), so these records are what ``getmany`` would have
returned. Nothing of aiokafka is patched: every other record of every client is parsed by
aiokafka's fast path, unchanged; this is only the way past a record it refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.consumer.fetcher import READ_COMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy, _DefaultRecordPy
from aiokafka.record.legacy_records import LegacyRecordBatch
from aiokafka.record.memory_records import _MemoryRecordsPy
from aiokafka.record.util import decode_varint

from broker.kafka._protocols import TopicPartition

__all__ = ["header_key_bytes", "read_partition", "undecodable"]


def undecodable(key: str) -> bool:
    """True for a header key that was not UTF-8 on the wire (read by this module)."""
    if key.isascii():
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def header_key_bytes(key: str) -> bytes:
    """A header key's bytes as they were on the wire, undecodable ones included."""
    return key.encode("utf-8", "surrogateescape")


class _TolerantBatch(_DefaultRecordBatchPy):  # type: ignore[misc]  # aiokafka's own, untyped
    """aiokafka's v2 batch, reading header keys with ``surrogateescape``."""

    _buffer: bytearray
    _pos: int

    def _read_msg(self, decode_varint: Any = decode_varint) -> Any:
        # The record layout of aiokafka's _read_msg (and Kafka's DefaultRecord): length,
        # attributes, timestamp delta, offset delta, key, value, headers.
        buffer, pos = self._buffer, self._pos
        length, pos = decode_varint(buffer, pos)
        start = pos
        _, pos = decode_varint(buffer, pos)
        ts_delta, pos = decode_varint(buffer, pos)
        if self.timestamp_type == self.LOG_APPEND_TIME:
            timestamp = self.max_timestamp
        else:
            timestamp = self.first_timestamp + ts_delta
        offset_delta, pos = decode_varint(buffer, pos)
        key, pos = _nullable(buffer, pos)
        value, pos = _nullable(buffer, pos)
        count, pos = decode_varint(buffer, pos)
        if count < 0:
            raise CorruptRecordException(f"Found invalid number of record headers {count}")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(count):
            raw_key, pos = _nullable(buffer, pos)
            if raw_key is None:
                raise CorruptRecordException("Invalid negative header key size")
            header_value, pos = _nullable(buffer, pos)
            headers.append((raw_key.decode("utf-8", "surrogateescape"), header_value))
        if pos - start != length:
            raise CorruptRecordException(
                f"Invalid record size: expected {length} bytes, read {pos - start}"
            )
        self._pos = pos
        return _DefaultRecordPy(
            self.base_offset + offset_delta, timestamp, self.timestamp_type, key, value, headers
        )


def _nullable(buffer: bytearray, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buffer, pos)
    if size < 0:
        return None, pos
    return bytes(buffer[pos : pos + size]), pos + size


class _TolerantRecords(_MemoryRecordsPy):  # type: ignore[misc]  # aiokafka's own, untyped
    """aiokafka's record set, handing out tolerant v2 batches."""

    def next_batch(self, *_: Any) -> Any:
        next_slice = self._next_slice
        if next_slice is None:
            return None
        if len(next_slice) < self.MIN_SLICE:
            raise CorruptRecordException("Record size is less than the minimum record overhead")
        self._cache_next()
        magic = next_slice[self.MAGIC_OFFSET]
        if magic >= 2:
            return _TolerantBatch(next_slice)
        return LegacyRecordBatch(next_slice, magic)  # v0/v1 have no headers to decode


def read_partition(
    tp: TopicPartition, raw: bytes, aborted: Sequence[Any] | None, offset: int, limit: int
) -> tuple[list[Any], int]:
    """The committed records in ``raw`` (a Fetch response's record set for ``tp``, fetched
    read_committed from ``offset``), at most ``limit``, and the offset to read on from."""
    records = PartitionRecords(
        tp, _TolerantRecords(raw), aborted, offset, None, None, True, READ_COMMITTED
    )
    out: list[Any] = []
    for record in records:
        out.append(record)
        if len(out) >= limit:
            return out, record.offset + 1
    return out, records.next_fetch_offset
