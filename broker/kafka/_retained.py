"""Reading what topics still hold: every committed record from a time on, up to their end
as it is when the read begins (records written meanwhile are left for another read)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from broker.errors import TransportError
from broker.kafka._clients import KafkaClients
from broker.kafka._errors import stop_bounded, translated
from broker.topics import INGRESS_PREFIX

__all__ = ["Retained", "read_retained"]


@dataclass(frozen=True, slots=True)
class Retained:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int
    key: bytes | None = None


async def read_retained(
    kafka: KafkaClients,
    topics: Sequence[str],
    *,
    since_ms: int | None = None,
    start: Mapping[tuple[str, int], int] | None = None,
    progress: Callable[[int], None] | None = None,
    partitions: dict[str, int] | None = None,
) -> list[Retained]:
    """Every committed record of ``topics`` (from ``since_ms``, else the beginning; a
    partition named in ``start``, by topic and number, from that offset), in each
    partition's order. ``progress`` hears how many records each fetch brought;
    ``partitions``, if given, is told each topic's partition count."""
    # The end is known, so a fetch has nothing to wait for; and Kafka answers a connection's
    # requests in turn, so the offsets requests and the stop waited out each long poll of a
    # partition at its end (in the background, the consumer fetches every partition). 500 ms
    # took 1.6 s to read the example's 22 empty ingress topics, 0.2 s at 20 ms
    # (docs/performance.md, ``accord policy impact``). A stall is still told by
    # getmany's own timeout below.
    consumer = kafka.consumer(client_id="accord-retained", fetch_max_wait_ms=20)
    out: list[Retained] = []
    try:
        async with translated(f"reading {_named(topics)} from {kafka.bootstrap}"):
            await consumer.start()
            tps = await _partitions(consumer, topics)
            if partitions is not None:
                partitions.update({t: sum(tp.topic == t for tp in tps) for t in topics})
            await _seek(consumer, tps, since_ms, start or {})
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            idle = 0
            while pending and idle < 60:
                got = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
                idle = 0 if got else idle + 1
                for tp, msgs in got.items():
                    out += [_retained(m) for m in msgs if m.offset < end[tp]]
                    if progress is not None:
                        progress(len(msgs))
                for tp in list(pending):
                    # Past the end as it was: control records (transaction markers) take
                    # offsets too, so the position, not the last record, says when.
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
            if pending:
                raise TransportError(f"reading {len(pending)} partition(s) stalled")
    finally:
        await stop_bounded(consumer)
    return out


def _named(topics: Sequence[str]) -> str:
    """The topics as an error line names them: a few by name, more by how many (every
    ingress topic, listed, made a line of some 900 characters)."""
    if len(topics) <= 3:
        return ", ".join(topics)
    ingress = all(t.startswith(INGRESS_PREFIX) for t in topics)
    return f"{len(topics)} {'ingress ' if ingress else ''}topics"


def _retained(m: Any) -> Retained:
    return Retained(
        m.topic, m.partition, m.offset, m.value, tuple(m.headers or ()), int(m.timestamp), m.key
    )


async def partition_count(kafka: KafkaClients, topic: str) -> int:
    """How many partitions ``topic`` has now."""
    consumer = kafka.consumer(client_id="accord-retained")
    try:
        async with translated(f"reading {topic}'s partitions from {kafka.bootstrap}"):
            await consumer.start()
            return len(await _partitions(consumer, [topic]))
    finally:
        await stop_bounded(consumer)


async def _partitions(consumer: Any, topics: Sequence[str]) -> list[TopicPartition]:
    have = await consumer.topics()
    if missing := [t for t in topics if t not in have]:
        raise TransportError(f"the topic {missing[0]} does not exist or is not readable")
    # Without a group, a consumer subscribed to topics is assigned all their partitions.
    consumer.subscribe(list(topics))
    for _ in range(100):
        tps: list[TopicPartition] = sorted(consumer.assignment())
        if {tp.topic for tp in tps} == set(topics):
            return tps
        await asyncio.sleep(0.1)
    raise TransportError(f"the partitions of {len(topics)} topic(s) could not be assigned")


async def _seek(
    consumer: Any,
    tps: list[TopicPartition],
    since_ms: int | None,
    start: Mapping[tuple[str, int], int],
) -> None:
    for tp in tps:
        if (tp.topic, tp.partition) in start:
            consumer.seek(tp, start[tp.topic, tp.partition])
    rest = [tp for tp in tps if (tp.topic, tp.partition) not in start]
    if not rest:
        return
    if since_ms is None:
        await consumer.seek_to_beginning(*rest)
        return
    found = await consumer.offsets_for_times(dict.fromkeys(rest, since_ms))
    end = await consumer.end_offsets(rest)
    for tp in rest:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else end[tp])
