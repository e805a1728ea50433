"""``accord_consumer_lag`` against the real Kafka: a paused partition's backlog is counted,
and an idle transactional topic (a commit marker after its last record) is 0 behind."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.kafka import TopicPartition
from broker.pipeline import _lag
from broker.pipeline._lag import Lag
from broker.pipeline._metrics import Metrics
from tests.kafka_helpers import clients, create_topics, unique_topic


async def _send(bootstrap: str, topic: str, count: int) -> None:
    producer = clients(bootstrap).transactional_producer(f"test-{uuid.uuid4()}", "test-lag")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(count):
                await producer.send(topic, f"r{i}".encode())
    finally:
        await producer.stop()


async def _measure(lag: Lag) -> None:
    lag.tick()
    assert lag.running is not None
    await lag.running


async def test_a_paused_partitions_backlog_is_counted_though_aiokafka_keeps_its_old_end(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lag, "STALE_AFTER_S", 0.5)
    topic = unique_topic("lag")
    await create_topics(kafka_bootstrap, [topic])
    await _send(kafka_bootstrap, topic, 5)  # offsets 0-4, the commit marker at 5
    tp = TopicPartition(topic, 0)
    consumer: Any = clients(kafka_bootstrap).consumer(client_id="test-lag")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while len(got) < 5 or await consumer.position(tp) < 6:
            assert time.monotonic() < deadline
            got += (await consumer.getmany(tp, timeout_ms=200)).get(tp, [])
        metrics = Metrics(CollectorRegistry())
        task = SimpleNamespace(processor=SimpleNamespace(outbox=SimpleNamespace(metrics=metrics)))
        lag = Lag({tp: task}, lambda: consumer, every=0)  # type: ignore[dict-item]
        await _measure(lag)
        gauge = {"topic": topic}
        assert metrics.registry.get_sample_value("accord_consumer_lag", gauge) == 0

        consumer.pause(tp)
        await _send(kafka_bootstrap, topic, 300)
        for _ in range(5):  # the loop goes on fetching its other partitions meanwhile
            await consumer.getmany(timeout_ms=200)
        assert consumer.highwater(tp) == 6  # stale: a paused partition is not fetched
        await asyncio.sleep(0.6)
        await _measure(lag)
        # Offsets behind: the 300 records and their transaction's commit marker.
        assert metrics.registry.get_sample_value("accord_consumer_lag", gauge) == 301
    finally:
        await consumer.stop()
