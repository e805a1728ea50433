"""The embedded broker keeps its data on disk across a stop and start."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_helpers import create_topics, unique_topic

N = 10_000


@pytest.mark.slow
async def test_records_survive_a_broker_restart(embedded_kafka: object) -> None:
    node = embedded_kafka
    bootstrap: str = node.bootstrap  # type: ignore[attr-defined]
    topic = unique_topic("restart")
    await create_topics(bootstrap, [topic], partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(N):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    node.stop()  # type: ignore[attr-defined]
    assert not node.status().running  # type: ignore[attr-defined]
    node.start()  # type: ignore[attr-defined]

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: dict[bytes, bytes] = {}
    count = 0
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            msgs = [m for ms in batch.values() for m in ms]
            for m in msgs:
                assert m.key is not None
                assert m.value is not None
                seen[m.key] = m.value
            count += len(msgs)
            idle = 0 if msgs or count < N else idle + 1
    finally:
        await consumer.stop()
    assert count == N
    assert seen == {f"k{i}".encode(): f"v{i}".encode() for i in range(N)}
