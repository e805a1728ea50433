"""A served gateway closes a request trickled past its deadline (a valid token gains nothing)
and connections past its cap, while authorised requests are still answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from broker.config import GatewaySettings, KafkaSettings, Settings
from broker.gateway import GatewayRun, run_gateway
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from tests.unit.gateway.conftest import TOKEN
from tests.unit.gateway.test_serve import Confirming

HOST = "127.0.0.1"
EVENT = json.dumps({"event_id": "e-1"}).encode()


def post_head(length: int) -> bytes:
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


class Gateway:
    def __init__(self, run: GatewayRun, registry: CollectorRegistry) -> None:
        self.port = int(run.url.rstrip("/").rsplit(":", 1)[1])
        self.registry = registry

    async def publish(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    ) -> bytes:
        """An authorised event, whole; the answer's status line."""
        reader, writer = conn or await asyncio.open_connection(HOST, self.port)
        writer.write(post_head(len(EVENT)) + EVENT)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await asyncio.wait_for(reader.readexactly(length), 5)
        if conn is None:
            writer.close()
        return status

    def closed(self, reason: str) -> float:
        sample = self.registry.get_sample_value(
            "accord_http_connections_closed_total", {"reason": reason}
        )
        return sample or 0.0


@pytest.fixture
async def gateway(tmp_path: Path, agency_keys: FileKeyStore) -> AsyncIterator[Gateway]:
    cfg = GatewaySettings(port=0, token=SecretStr(TOKEN), request_deadline_seconds=0.6,
                          max_connections=3)  # fmt: skip
    settings = Settings(home=tmp_path, gateway=cfg)
    kafka = KafkaClients(KafkaSettings(security_protocol="PLAINTEXT"))
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    registry = CollectorRegistry()
    serving = run_gateway(
        settings, "wmp", agency_keys, kafka, registry=registry,
        publisher=Confirming(), started=runs.append, stop=stop,
    )  # fmt: skip
    task = asyncio.create_task(serving)
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    [run] = runs
    yield Gateway(run, registry)
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_a_body_trickled_with_a_valid_token_is_closed_at_the_deadline(
    gateway: Gateway,
) -> None:
    reader, writer = await asyncio.open_connection(HOST, gateway.port)
    writer.write(post_head(1000) + b"{")
    await writer.drain()
    start = time.monotonic()

    async def drip() -> None:
        while not writer.is_closing():
            await asyncio.sleep(0.1)
            writer.write(b" ")
            try:
                await writer.drain()
            except ConnectionError:
                return

    dripping = asyncio.create_task(drip())
    assert (await gateway.publish()).startswith(b"HTTP/1.1 202")  # others are served meanwhile
    answer = await asyncio.wait_for(reader.read(), 10)
    dripping.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert 0.5 < time.monotonic() - start < 3
    assert gateway.closed("deadline") == 1


async def test_connections_past_the_cap_are_closed_while_an_open_one_is_answered(
    gateway: Gateway,
) -> None:
    kept = await asyncio.open_connection(HOST, gateway.port)
    idle = [await asyncio.open_connection(HOST, gateway.port) for _ in range(2)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection(HOST, gateway.port)
    with contextlib.suppress(ConnectionResetError):  # closed so, too
        assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert (await gateway.publish(kept)).startswith(b"HTTP/1.1 202")
    assert gateway.closed("over_limit") == 1
    for _, w in [kept, *idle]:
        w.close()
