"""The worker's slow path past a record aiokafka cannot parse (``broker.kafka``'s tolerant read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from broker.kafka import Consumer, KafkaClients, TopicPartition, translated

log = structlog.get_logger("accord.worker")


async def read_past(
    kafka: KafkaClients,
    consumer: Consumer,
    fetchable: list[TopicPartition],
    positions: dict[TopicPartition, int],
    limit: int,
    *,
    tasks: Mapping[TopicPartition, object],
) -> dict[TopicPartition, list[Any]]:
    """Read on past a record aiokafka cannot parse (a header key that is not UTF-8).

    aiokafka raises out of ``getmany`` on such a record, at every fetch, and the
    partitions it drained before it in that call have moved past records it never
    returned. So every fetchable partition goes back to the next record this worker has
    not processed (a partition it has not read from in this run: the group's committed
    offset, which the transactions move with the outputs; with none, its beginning) and
    is read once by the tolerant path, which hands the record on for the processor to
    quarantine; the consumer then seeks past what was read. Only for the partitions whose
    task in ``tasks`` (the live mapping) is still the one it was before the read: a
    rebalance may run during it, and a partition given up (and perhaps taken back)
    meanwhile was sought to its committed offset by the listener, which the rewind here
    must not undo (the old task's position, past work the loss dropped).
    """
    before = {tp: tasks.get(tp) for tp in fetchable}

    def keep(tp: TopicPartition) -> bool:
        return (task := tasks.get(tp)) is not None and task is before[tp]

    starts: dict[TopicPartition, int] = {}
    async with translated("finding where unread partitions resume"):
        for tp in fetchable:
            if tp not in positions and (done := await consumer.committed(tp)) is not None:
                starts[tp] = done
        never = [tp for tp in fetchable if tp not in positions and tp not in starts]
        starts |= await consumer.beginning_offsets(never) if never else {}
    rewind = {tp: positions.get(tp, starts.get(tp, 0)) for tp in fetchable}
    batch, moved = await kafka.read_tolerantly(rewind, limit=limit)
    assigned = consumer.assignment()  # a rebalance may have come meanwhile
    kept = {tp for tp in rewind if tp in assigned and keep(tp)}
    for tp in kept:
        consumer.seek(tp, moved.get(tp, rewind[tp]))
    log.warning("read_past_undecodable", partitions=len(rewind),
                records=sum(len(m) for m in batch.values()))  # fmt: skip
    return {tp: msgs for tp, msgs in batch.items() if tp in kept}
