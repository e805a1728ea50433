"""Idempotent and transactional producers against the real Apache Kafka."""

from __future__ import annotations

import uuid

from tests.kafka_helpers import clients, create_topics, read_to_end, unique_topic


async def _read_all(bootstrap: str, topic: str, *, isolation: str) -> list[bytes]:
    # To the end offsets, not a fixed count: a count alone could hide extra records.
    records = await read_to_end(bootstrap, topic, isolation=isolation)
    return [m.value for m in records if m.value is not None]


async def test_idempotent_producer_with_acks_all_delivers_each_record_once(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("idem")
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    producer = clients(kafka_bootstrap).producer("test-idempotent")
    await producer.start()
    try:
        sent = [f"r{i}".encode() for i in range(500)]
        for value in sent:
            await producer.send(topic, value, key=value)
        await producer.flush()
    finally:
        await producer.stop()
    got = await _read_all(kafka_bootstrap, topic, isolation="read_uncommitted")
    assert sorted(got) == sorted(sent)


async def test_transactional_producer_commit_is_visible_and_abort_is_not(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("txn")
    await create_topics(kafka_bootstrap, [topic])
    producer = clients(kafka_bootstrap).transactional_producer(
        f"test-{uuid.uuid4()}", "test-transactional"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()

    committed = await _read_all(kafka_bootstrap, topic, isolation="read_committed")
    assert committed == [b"committed-1", b"committed-2"]
    # The aborted record is physically in the log: only the isolation level hides it.
    everything = await _read_all(kafka_bootstrap, topic, isolation="read_uncommitted")
    assert b"aborted" in everything
