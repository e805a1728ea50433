"""``KafkaClients.may_describe``: Kafka's answer for one topic, asked without producing and
read here, so that an ACL refusal is an answer, not an aiokafka error line."""

from __future__ import annotations

import asyncio
import gc
import logging
import struct
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.admin import ApiVersionResponse_v0
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


async def test_a_kafka_not_there_cannot_tell_and_its_refused_connection_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka logs "Unable connect to" at ERROR; a probe expects refusals (as reachable())."""
    caplog.set_level(logging.INFO)
    kafka = KafkaClients(KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT"))
    assert await kafka.may_describe(CONSENT, timeout_ms=500) is None
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    logging.getLogger("aiokafka").error("after the probe")  # not silenced for good
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


_API_VERSIONS, _METADATA = 18, 3


class StallingBroker:
    """Answers ApiVersions, then never answers a Metadata request: a half-dead broker that
    keeps a probe waiting past its time inside aiokafka's bootstrap."""

    def __init__(self) -> None:
        self.open = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while True:
                [size] = struct.unpack(">i", await reader.readexactly(4))
                data = await reader.readexactly(size)
                api_key, _version, correlation = struct.unpack(">hhi", data[:8])
                if api_key == _API_VERSIONS:
                    answer = ApiVersionResponse_v0(
                        error_code=0, api_versions=[(_METADATA, 0, 8), (_API_VERSIONS, 0, 1)]
                    ).encode()
                    payload = struct.pack(">i", correlation) + answer
                    writer.write(struct.pack(">i", len(payload)) + payload)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def test_a_probe_past_its_time_is_none_and_closes_its_connection_all_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not cancelled mid-bootstrap (which leaves aiokafka's connection open, and asyncio then
    logs "Unclosed AIOKafkaConnection" at ERROR when it is collected): the request runs on
    to aiokafka's own timeout, and closes its connection."""
    caplog.set_level(logging.INFO)
    broker = StallingBroker()
    server = await asyncio.start_server(broker.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kafka = KafkaClients(KafkaSettings(bootstrap=f"127.0.0.1:{port}",
                                       security_protocol="PLAINTEXT"))  # fmt: skip
    async with server:
        assert await kafka.may_describe(CONSENT, timeout_ms=300) is None
        for _ in range(100):  # the connection closed, by the probe or by the collector
            gc.collect()
            if not broker.open:
                break
            await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    assert broker.open == 0
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
