"""A first connection to Kafka that gets no answer is said out loud, not waited on in silence
(aiokafka waits up to 40 s on a broker that takes the connection and never answers)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import TransportError
from broker.kafka import _errors, connecting
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Publisher


@pytest.fixture
def soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_errors, "NOT_ANSWERING_AFTER_S", 0.05)


async def test_a_connection_that_takes_long_is_warned_about_once(soon: None) -> None:
    with structlog.testing.capture_logs() as logs:
        async with connecting("kafka.example:9093"):
            await asyncio.sleep(0.2)
    assert logs == [
        {"event": "kafka_not_answering", "bootstrap": "kafka.example:9093", "waited_s": 0.05,
         "log_level": "warning"},
    ]  # fmt: skip


async def test_a_block_whose_slow_starts_each_answer_late_is_warned_about_once(
    soon: None,
) -> None:
    """Each answer re-arms the warning until it has been given: starts that each take
    longer than the wait are one silence said once, not a warning per start."""
    with structlog.testing.capture_logs() as logs:
        async with connecting("kafka.example:9093") as answered:
            for _ in range(3):
                await asyncio.sleep(0.1)
                answered()
            await asyncio.sleep(0.1)
    assert [e["event"] for e in logs] == ["kafka_not_answering"]


async def test_a_prompt_connection_or_failure_is_not_warned_about(soon: None) -> None:
    with structlog.testing.capture_logs() as logs:
        async with connecting("kafka.example:9093"):
            pass
        with pytest.raises(TransportError, match=r"^connecting to Kafka at kafka\.example:9093: "):
            async with connecting("kafka.example:9093"):
                raise ConnectionRefusedError(111, "Connection refused")
        await asyncio.sleep(0.2)
    assert logs == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Takes connections and never answers: a fake, not Kafka."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


async def test_a_publisher_says_kafka_is_not_answering_while_it_waits(
    soon: None, silent_port: int, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party("wmp")
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"])  # as if imported
    kafka = KafkaSettings(
        bootstrap=f"127.0.0.1:{silent_port}", security_protocol=KafkaSecurity.PLAINTEXT
    )
    publisher = Publisher("wmp", keys, kafka)
    with structlog.testing.capture_logs() as logs:
        starting = asyncio.ensure_future(publisher.start())
        await asyncio.sleep(0.5)
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    assert [e["event"] for e in logs] == ["kafka_not_answering"]
