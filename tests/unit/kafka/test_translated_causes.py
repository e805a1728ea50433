"""A read whose client's start fails says why, as a first connection does: a port that does
not speak TLS reached over TLS is a failed handshake, not 'is Kafka running?' (review
s42r7: read_retained, the audit indexer and other reads started under plain translated())."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from broker.config import KafkaSettings
from broker.errors import TransportError
from broker.kafka import KafkaClients, read_retained, stop_bounded, translated


async def _answer_in_http(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def not_tls() -> AsyncIterator[KafkaClients]:
    """Clients that speak SASL over TLS to a port answering in plain HTTP."""
    server = await asyncio.start_server(_answer_in_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = KafkaSettings(
        bootstrap=f"127.0.0.1:{port}",
        security_protocol="SASL_SSL",
        username="wmp",
        password=SecretStr("pw"),
    )
    try:
        yield KafkaClients(settings)
    finally:
        server.close()


async def test_a_read_whose_start_meets_no_tls_names_the_handshake(
    not_tls: KafkaClients,
) -> None:
    with pytest.raises(TransportError) as failed:
        await read_retained(not_tls, ["accord.audit"])
    said = str(failed.value)
    assert said.startswith(f"reading accord.audit from {not_tls.bootstrap}: TLS: the handshake ")
    assert "could not reach" not in said


async def test_a_start_under_translated_names_the_cause_whatever_aiokafkas_level(
    not_tls: KafkaClients,
) -> None:
    """The CLI keeps aiokafka at CRITICAL: its logged causes are still read, not printed."""
    logger = logging.getLogger("aiokafka")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    consumer = not_tls.consumer(client_id="accord-test")
    try:
        with pytest.raises(TransportError, match=r"^indexing accord\.audit: TLS: the handshake"):
            async with translated("indexing accord.audit"):
                await consumer.start()
        assert logger.level == logging.CRITICAL  # as it was, once the block ended
    finally:
        logger.setLevel(before)
        await stop_bounded(consumer)
