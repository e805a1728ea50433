"""A retained read that fails names its topics by how many when there are many (walkthrough:
`accord policy impact` with Kafka down printed every ingress topic, a ~900-character line)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from broker.errors import TransportError
from broker.kafka import read_retained
from broker.kafka._errors import NO_CONNECTION
from broker.topics import ingress
from tests.kafka_helpers import OneConsumerKafka, SlowToClose


class Unreachable(SlowToClose):
    async def start(self) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        pass


async def _failed(topics: list[str]) -> str:
    kafka = OneConsumerKafka(Unreachable(topics[0]))
    with pytest.raises(TransportError) as failed:
        await read_retained(kafka, topics)  # type: ignore[arg-type]  # the fake
    return str(failed.value)


async def test_many_ingress_topics_are_named_by_how_many_not_listed() -> None:
    topics = [ingress(f"party-{n}") for n in range(22)]
    said = await _failed(topics)
    assert said == (
        f"reading 22 ingress topics from kafka.test:9093: could not reach Kafka: {NO_CONNECTION}"
    )


async def test_many_topics_of_other_kinds_are_counted_without_saying_ingress() -> None:
    said = await _failed(["accord.audit", *(ingress(f"p{n}") for n in range(4))])
    assert said.startswith("reading 5 topics from kafka.test:9093: ")


async def test_a_few_topics_are_still_named() -> None:
    said = await _failed(["accord.audit", "accord.consent"])
    assert said.startswith("reading accord.audit, accord.consent from kafka.test:9093: ")
