"""``read_retained`` returns what it read without waiting for its consumer to finish closing
(a close over TLS can wait 30 s for a Kafka broker that never answers its close_notify:
``broker.kafka.stop_bounded``). The fake consumer's stop waits that way, for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.kafka import TopicPartition, _errors, read_retained


class _SlowToClose:
    """A group-less consumer of one empty partition; its stop never returns."""

    def __init__(self) -> None:
        self.tp = TopicPartition("accord.test", 0)
        self.stop_begun = asyncio.Event()

    async def start(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {self.tp.topic}

    def subscribe(self, topics: list[str]) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        pass

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def position(self, tp: TopicPartition) -> int:  # noqa: ARG002  # the Consumer's
        return 0

    async def stop(self) -> None:
        self.stop_begun.set()
        await asyncio.Event().wait()


class _Kafka:
    bootstrap = "kafka.test:9093"

    def __init__(self, consumer: _SlowToClose) -> None:
        self._consumer = consumer

    def consumer(self, *topics: str, **options: Any) -> _SlowToClose:  # noqa: ARG002
        return self._consumer


async def test_a_retained_read_returns_while_its_consumer_is_still_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)
    consumer = _SlowToClose()

    records = await asyncio.wait_for(
        read_retained(_Kafka(consumer), [consumer.tp.topic]),  # type: ignore[arg-type]  # the fake
        timeout=2,
    )

    assert records == []
    assert consumer.stop_begun.is_set()  # begun, and left to finish in the background
