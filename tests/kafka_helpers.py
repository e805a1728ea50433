"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from broker.config import KafkaSettings
from broker.kafka import KafkaClients


def clients(bootstrap: str) -> KafkaClients:
    """Accord's Kafka clients for the test broker at ``bootstrap``."""
    return KafkaClients(KafkaSettings(bootstrap=bootstrap))


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topics(
    bootstrap: str, names: list[str], *, partitions: int = 1, config: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs=config or {}) for n in names]
        )
    finally:
        await admin.close()


async def read_to_end(
    bootstrap: str, topic: str, *, isolation: str = "read_committed", within_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets when called, in each partition's order.

    Reads until every position reaches those offsets (under ``read_committed``, the last stable
    offset), never "until a quiet poll": a broker pausing for a second on a busy machine must
    not cut the read short. Fails, rather than hangs, if the end is not reached in time.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    try:
        if topic not in await consumer.topics():
            return out  # not created yet (the worker creates its topics): nothing in it
        consumer.subscribe([topic])  # without a group: every partition, once metadata is in
        deadline = time.monotonic() + within_s
        while not consumer.assignment():
            assert time.monotonic() < deadline, f"{topic}: no partitions assigned in {within_s} s"
            await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < end[tp]:
                assert time.monotonic() < deadline, f"{topic} not read to its end in {within_s} s"
                batch = await consumer.getmany(tp, timeout_ms=500)
                out += batch.get(tp, [])
    finally:
        await consumer.stop()
    return out
