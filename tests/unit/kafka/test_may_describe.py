"""``KafkaClients.may_describe``: Kafka's answer for one topic, asked without producing and
read here, so that an ACL refusal is an answer, not an aiokafka error line."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest, MetadataResponse_v1

from broker.config import KafkaSettings
from broker.kafka import KafkaClients
from broker.topics import CONSENT

_NONE, _UNKNOWN_TOPIC, _TOPIC_AUTHORIZATION_FAILED = 0, 3, 29


class FakeClient:
    """aiokafka's client, answering the metadata request with ``code`` for the topic."""

    made: ClassVar[list[FakeClient]] = []

    def __init__(self, code: int | None, **kw: Any) -> None:
        self.code, self.kw, self.requests, self.closed = code, kw, [], False
        FakeClient.made.append(self)

    async def bootstrap(self) -> None:
        if self.code is None:
            raise KafkaConnectionError("no broker")

    def get_random_node(self) -> int:
        return 0

    async def send(self, _node: int, request: MetadataRequest) -> MetadataResponse_v1:
        self.requests.append(request)
        return MetadataResponse_v1(
            brokers=[(0, "kafka", 9092, None)], controller_id=0,
            topics=[(self.code, CONSENT, False, [])],
        )  # fmt: skip

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("code", "answer"),
    [(_TOPIC_AUTHORIZATION_FAILED, False), (_NONE, True), (_UNKNOWN_TOPIC, None), (None, None)],
)
async def test_kafkas_answer_for_the_topic_is_yes_no_or_cannot_tell(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: int | None,
    answer: bool | None,
) -> None:
    FakeClient.made.clear()
    monkeypatch.setattr("broker.kafka._clients.AIOKafkaClient",
                        lambda **kw: FakeClient(code, **kw))  # fmt: skip
    kafka = KafkaClients(KafkaSettings(bootstrap="kafka:9092", security_protocol="PLAINTEXT"))
    assert await kafka.may_describe(CONSENT) is answer
    [client] = FakeClient.made
    assert client.closed
    assert client.kw["bootstrap_servers"] == "kafka:9092"
    for request in client.requests:  # asking never creates the topic
        assert request._topics == [CONSENT]
        assert request._allow_auto_topic_creation is False
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_kafka_not_there_cannot_tell() -> None:
    kafka = KafkaClients(KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT"))
    assert await kafka.may_describe(CONSENT, timeout_ms=500) is None
