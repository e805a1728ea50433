"""``read_retained`` returns what it read without waiting for its consumer to finish closing
(a close over TLS can wait 30 s for a Kafka broker that never answers its close_notify:
``broker.kafka.stop_bounded``). The fake consumer's stop waits that way, for ever."""

from __future__ import annotations

import asyncio

import pytest

from broker.kafka import _errors, read_retained
from tests.kafka_helpers import OneConsumerKafka, SlowToClose


async def test_a_retained_read_returns_while_its_consumer_is_still_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)
    consumer = SlowToClose("accord.test")

    records = await asyncio.wait_for(
        read_retained(OneConsumerKafka(consumer), [consumer.tp.topic]),  # type: ignore[arg-type]  # the fake
        timeout=2,
    )

    assert records == []
    assert consumer.stop_begun.is_set()  # begun, and left to finish in the background
