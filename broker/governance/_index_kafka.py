"""The audit indexer's Kafka moves: assigning every partition of the topic, seeking to the
stored offsets, knowing when a partition has been read to its end, and reading single
messages again at given offsets."""

from __future__ import annotations

import asyncio
from typing import Any

from broker.errors import AuditError, TransportError

Message = tuple[bytes | None, bytes | None, int, int]  # key, value, partition, offset


async def assign(consumer: Any, topic: str) -> list[Any]:
    if topic not in await consumer.topics():
        raise TransportError(f"the topic {topic} does not exist (has a worker run yet?)")
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer.subscribe([topic])
    for _ in range(100):
        tps: list[Any] = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if tps:
            break
        await asyncio.sleep(0.1)
    else:
        raise TransportError(f"no partitions of {topic} could be assigned")
    return tps


async def read_to_end(consumer: Any, tps: list[Any]) -> dict[int, int]:
    """The partitions whose every committed message up to the last stable offset the last
    fetch reported has been read, each with that offset. Records of a transaction still open
    lie above it, and so may the checkpoint of a record below it (the indexer's docstring)."""
    out = {}
    for tp in tps:
        stable = consumer.last_stable_offset(tp)  # None until a fetch from that partition
        if stable is not None and await consumer.position(tp) >= stable:
            out[tp.partition] = stable
    return out


def highwaters(consumer: Any, tps: list[Any]) -> dict[int, int]:
    """Each partition's high watermark as the last fetch from it reported: at least what it
    was when the messages ``getmany`` has just returned were fetched."""
    out = {}
    for tp in tps:
        high = consumer.highwater(tp)  # None until a fetch from that partition
        if high is not None:
            out[tp.partition] = high
    return out


async def seek_stored(consumer: Any, tps: list[Any], stored: dict[int, int]) -> None:
    fresh = [tp for tp in tps if tp.partition not in stored]
    if fresh:
        await consumer.seek_to_beginning(*fresh)
    for tp in tps:
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])


def behind_the_index(topic: str, stored: dict[int, int], ends: dict[int, int]) -> None:
    """Refuse a topic that ends before the offsets the index has read it to (``ends``: each
    partition's end now). Its records there are not those the index read: Kafka was restored
    from a backup older than the index, or the topic recreated. Indexed on, the writers' new
    records would be refused as rewriting indexed history and their next checkpoints taken
    for signed evidence of missing history: a chain broken for good, nothing new indexed."""
    for partition, offset in sorted(stored.items()):
        end = ends.get(partition, 0)
        if offset > end:
            raise AuditError(
                f"the audit index has read {topic} partition {partition} up to offset "
                f"{offset}, but the topic ends at offset {end}: Kafka was restored from a "
                "backup older than the index, or the topic recreated; nothing was indexed. "
                "Restore an audit index backed up at or before the Kafka backup, or rebuild "
                "the index into an empty database with 'accord audit index --once' "
                "(docs/deployment.md, Restore)"
            )


async def check_ends(consumer: Any, tps: list[Any], stored: dict[int, int]) -> None:
    """``behind_the_index`` against the topic's end offsets as Kafka gives them now."""
    if not stored:
        return
    ends = await consumer.end_offsets(tps)
    behind_the_index(tps[0].topic, stored, {tp.partition: o for tp, o in ends.items()})


async def at_end(consumer: Any, end: dict[Any, int]) -> bool:
    for tp, last in end.items():
        if await consumer.position(tp) < last:
            return False
    return True


async def read_at(consumer: Any, tps: list[Any], where: list[tuple[int, int]]) -> list[Message]:
    """The messages at exactly ``where`` (partition, offset), in that order. The consumer's
    positions are moved: seek after.

    Each offset is one the indexer itself refused a record at, so a record is there: one
    that does not come back is a failed read (a leader moving, a broker restarting), a
    ``TransportError``, and the batch is tried again, never taken for missing history (a
    chain broken for good). Only an offset below the partition's first, the record gone
    with a retention someone set, is left out."""
    by_partition = {tp.partition: tp for tp in tps}
    found: list[Message] = []
    for partition, offset in where:
        tp = by_partition.get(partition)
        if tp is None:
            continue
        if await consumer.position(tp) != offset:
            consumer.seek(tp, offset)
        got: list[Any] = []
        for _ in range(20):  # a fetch may come back empty before the data arrives
            got = (await consumer.getmany(tp, timeout_ms=500, max_records=1)).get(tp) or []
            if got:
                break
        here = [(m.key, m.value, m.partition, m.offset) for m in got if m.offset == offset]
        if not here and offset >= (await consumer.beginning_offsets([tp])).get(tp, 0):
            raise TransportError(
                f"reading {tp.topic} partition {partition} again at offset {offset}: no record "
                "came back; the next run reads it again"
            )
        found += here
    return found
