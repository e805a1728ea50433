"""Logins to the real, secured Apache Kafka: one PBKDF2 per credential, not per connection."""

from __future__ import annotations

import uuid

import aiokafka.conn
import pytest

from broker.kafka import stop_quietly
from broker.kafka._scram import forget_salted_passwords
from tests.kafka_helpers import (
    CountingHashlib,
    clients,
    create_topics,
    read_to_end,
    unique_topic,
)


async def test_three_transactional_producers_of_one_login_work_out_its_password_once(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each producer opens its own connections (its partition's leader, its transaction
    coordinator), each a full SCRAM exchange that Kafka accepts; the salted password is
    worked out at the first and reused by the rest."""
    topic = unique_topic("scram")
    await create_topics(kafka_bootstrap, [topic])
    kafka = clients(kafka_bootstrap)
    assert kafka.principal is not None  # a SCRAM login, or this would prove nothing
    forget_salted_passwords()
    counting = CountingHashlib()
    monkeypatch.setattr(aiokafka.conn, "hashlib", counting)
    producers = [
        kafka.transactional_producer(f"test-scram-{uuid.uuid4()}", f"test-scram-{i}")
        for i in range(3)
    ]
    try:
        for i, producer in enumerate(producers):
            await producer.start()
            await producer.begin_transaction()
            await producer.send(topic, f"r{i}".encode())
            await producer.commit_transaction()
    finally:
        for producer in producers:
            await stop_quietly(producer)
    got = await read_to_end(kafka_bootstrap, topic, isolation="read_committed")
    assert sorted(m.value for m in got) == [b"r0", b"r1", b"r2"]
    assert counting.pbkdf2_runs == 1
