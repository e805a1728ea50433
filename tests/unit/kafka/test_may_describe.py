"""``KafkaClients.may_describe``: Kafka's answer for one topic, asked without producing and
read here, so that an ACL refusal is an answer, not an aiokafka error line."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import struct
import threading
import time
import warnings
from typing import Any, ClassVar

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.admin import ApiVersionResponse_v0
from aiokafka.protocol.metadata import MetadataRequest, MetadataResponse_v1

from broker.config import KafkaSettings
from broker.kafka import KafkaClients
from broker.topics import CONSENT

_NONE, _UNKNOWN_TOPIC, _TOPIC_AUTHORIZATION_FAILED = 0, 3, 29


class FakeConnection:
    """aiokafka's connection, answering the metadata request with ``code`` for the topic."""

    made: ClassVar[list[FakeConnection]] = []

    def __init__(self, code: int | None, host: str, port: int, **kw: Any) -> None:
        self.code, self.address, self.kw = code, (host, port), kw
        self.requests: list[MetadataRequest] = []
        self.closed = False
        FakeConnection.made.append(self)

    async def connect(self) -> None:
        if self.code is None:
            raise KafkaConnectionError("no broker")

    async def send(self, request: MetadataRequest) -> MetadataResponse_v1:
        self.requests.append(request)
        return MetadataResponse_v1(
            brokers=[(0, "kafka", 9092, None)], controller_id=0,
            topics=[(self.code, CONSENT, False, [])],
        )  # fmt: skip

    def close(self) -> None:
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
    FakeConnection.made.clear()
    monkeypatch.setattr(
        "broker.kafka._clients.AIOKafkaConnection",
        lambda host, port, **kw: FakeConnection(code, host, port, **kw),
    )
    kafka = KafkaClients(KafkaSettings(bootstrap="kafka:9092", security_protocol="PLAINTEXT"))
    assert await kafka.may_describe(CONSENT) is answer
    [conn] = FakeConnection.made
    assert conn.closed
    assert conn.address == ("kafka", 9092)
    assert conn.kw["client_id"] == "accord-probe"
    for request in conn.requests:  # asking never creates the topic
        assert request._topics == [CONSENT]
        assert request._allow_auto_topic_creation is False
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_each_bootstrap_address_is_asked_in_turn_until_one_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeConnection.made.clear()
    codes = {"down": None, "up": _NONE}
    monkeypatch.setattr(
        "broker.kafka._clients.AIOKafkaConnection",
        lambda host, port, **kw: FakeConnection(codes[host], host, port, **kw),
    )
    kafka = KafkaClients(KafkaSettings(bootstrap="down:9092,up:9092",
                                       security_protocol="PLAINTEXT"))  # fmt: skip
    for _ in range(5):  # aiokafka's order is shuffled: "down" comes first sometimes
        assert await kafka.may_describe(CONSENT) is True
    assert all(conn.closed for conn in FakeConnection.made)


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
        self.open = self.peak = 0
        self.reached = threading.Event()  # a connection came (told across threads)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.reached.set()
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


def _plaintext(*addresses: str) -> KafkaClients:
    return KafkaClients(KafkaSettings(bootstrap=",".join(addresses), security_protocol="PLAINTEXT"))


async def _all_closed(broker: StallingBroker) -> None:
    for _ in range(20):  # a turn or two of the loop: the broker reads the probe's close
        if not broker.open:
            return
        await asyncio.sleep(0.005)


async def test_a_probe_past_its_time_is_none_and_closes_its_connection_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bound is the whole question's, however many bootstrap addresses there are
    (aiokafka's bootstrap gives its timeout to each step at each), and nothing is left
    running after it: no connection open, no request going on to overlap the next probe's.
    Cancelled (a probe's own connection, closed in a ``finally``), so asyncio has no
    "Unclosed AIOKafkaConnection" to log."""
    caplog.set_level(logging.INFO)
    broker = StallingBroker()
    server = await asyncio.start_server(broker.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kafka = _plaintext(*(f"{host}:{port}" for host in ("127.0.0.1", "localhost", "127.0.0.1")))
    loop = asyncio.get_running_loop()
    async with server:
        for _ in range(3):  # probes one after another, as a gate asks every NOT_TOLD_S
            began = loop.time()
            assert await kafka.may_describe(CONSENT, timeout_ms=300) is None
            assert loop.time() - began < 0.3 + 0.15
            await _all_closed(broker)
            assert broker.open == 0
        gc.collect()
        await asyncio.sleep(0)
    assert broker.peak == 1
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_gateway_stopping_while_a_probe_waits_leaves_no_connection_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``asyncio.run`` ending (a gateway stopping) cancels the probe under way; its
    connection is closed all the same: no socket, transport or aiokafka connection left to
    the collector (a ResourceWarning, or asyncio's "Unclosed AIOKafkaConnection")."""
    caplog.set_level(logging.INFO)
    broker = StallingBroker()
    ready, stop = threading.Event(), threading.Event()
    port: list[int] = []

    async def kafka_side() -> None:  # the half-dead broker, on a loop of its own
        server = await asyncio.start_server(broker.serve, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await asyncio.to_thread(stop.wait, 10)

    async def gateway() -> None:
        kafka = _plaintext(f"127.0.0.1:{port[0]}", f"localhost:{port[0]}")
        asking = asyncio.create_task(kafka.may_describe(CONSENT, timeout_ms=5000))
        assert await asyncio.to_thread(broker.reached.wait, 5)
        await asyncio.sleep(0.05)  # the probe waits for its metadata answer: stop now
        assert not asking.done()

    side = threading.Thread(target=asyncio.run, args=(kafka_side(),))
    side.start()
    try:
        assert ready.wait(5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(gateway())
            gc.collect()
        for _ in range(100):
            if not broker.open:
                break
            time.sleep(0.01)
    finally:
        stop.set()
        side.join(5)
    assert broker.open == 0
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_probe_silences_its_own_refused_connections_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The probes' "Unable connect to" lines go, while another client's, refused meanwhile
    (a producer's, say), are still logged at ERROR: the quiet is the probe's context's."""
    caplog.set_level(logging.INFO)

    async def other() -> None:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:2", request_timeout_ms=300)
        try:
            with contextlib.suppress(KafkaError):
                await client.bootstrap()
        finally:
            await client.close()

    kafka = _plaintext("127.0.0.1:1")
    answers = await asyncio.gather(
        kafka.may_describe(CONSENT, timeout_ms=300), other(), kafka.reachable(300), other()
    )
    assert answers == [None, None, False, None]
    refused = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(refused) == 2
    assert all('"127.0.0.1:2"' in line for line in refused)
