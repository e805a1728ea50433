"""The embedded broker keeps its data on disk across a stop and start."""

from __future__ import annotations

import pytest

from tests.kafka_helpers import clients, create_topics, read_to_end, unique_topic

N = 10_000


@pytest.mark.slow
async def test_records_survive_a_broker_restart(embedded_kafka: object) -> None:
    node = embedded_kafka
    bootstrap: str = node.bootstrap  # type: ignore[attr-defined]
    topic = unique_topic("restart")
    await create_topics(bootstrap, [topic], partitions=3)
    producer = clients(bootstrap).producer("test-restart")
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

    records = await read_to_end(bootstrap, topic, isolation="read_uncommitted", within_s=120)
    seen = {m.key: m.value for m in records}
    count = len(records)
    assert count == N
    assert seen == {f"k{i}".encode(): f"v{i}".encode() for i in range(N)}
