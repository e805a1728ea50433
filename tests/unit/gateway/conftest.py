"""The gateway's app over a real ``Publisher`` (real validation and sealing, with the agency's
own keystore), whose Kafka is a fake: it confirms, refuses, fails or never answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.testclient import TestClient

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite, SignInSettings
from broker.gateway import GatewayDeps, GatewayMetrics, create_gateway_app
from broker.kafka import KafkaClients
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.webauth import HostCheck

AT = datetime(2026, 11, 22, 8, tzinfo=UTC)
X25519 = EnvelopeSettings(kem=KemSuite.X25519)  # quick keys; the KEM is not what is tested
TOKEN = "gw-" + "s3cr3t-t0ken-" * 4  # synthetic, 55 characters
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Meta:
    topic: str
    partition: int
    offset: int


class FakeProducer:
    """Kafka as ``kafka.mode`` says: "ok", "down" (a connection error: nothing written),
    "denied" (ACLs refuse the topic) or "silent" (never answers: Kafka may have it)."""

    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[Any]:
        mode = self.kafka.mode
        if mode == "down":
            raise KafkaConnectionError("no broker")
        if mode == "denied":
            raise TopicAuthorizationFailedError(topic)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if mode == "ok":
            self.kafka.sent.append((topic, kw.get("key"), value))
            future.set_result(Meta(topic, 0, len(self.kafka.sent) - 1))
        return future  # "silent": never resolved

    async def flush(self) -> None: ...


class FakeKafka(KafkaClients):
    def __init__(self) -> None:
        super().__init__(KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT"))
        self.mode = "ok"
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def producer(self, client_id: str, **kw: Any) -> Any:  # noqa: ARG002  # the seam's signature
        return FakeProducer(self)


@dataclass
class Gateway:
    client: TestClient
    kafka: FakeKafka
    registry: CollectorRegistry
    fam: SyntheticFamilies

    def event(self, **overrides: Any) -> dict[str, Any]:
        """A synthetic police incident of wmp's, as JSON would carry it."""
        fam = self.fam
        event = fam.event("police.domestic_incident", "wmp", subjects=[fam.subject("child")],
                          occurred_at=datetime(2026, 11, 21, 22, 40, tzinfo=UTC))  # fmt: skip
        out: dict[str, Any] = json.loads(json.dumps(event, default=str))
        out.update(overrides)
        return out

    def post(self, path: str, body: Any, **headers: str) -> Any:
        headers = {**AUTH, "Content-Type": "application/json", **headers}
        return self.client.post(path, content=json.dumps(body).encode(), headers=headers)

    def count(self, endpoint: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "accord_gateway_requests_total", {"endpoint": endpoint, "outcome": outcome}
        )
        return value or 0.0


@pytest.fixture(scope="session")
def agency_keys(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    """wmp's own keystore: its private keys, and the broker's public ones."""
    keys = FileKeyStore(tmp_path_factory.mktemp("gw") / "keys", create=True)
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    keys.ensure_party("hv-sandwell", kem=KemSuite.X25519)
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"], kem=KemSuite.X25519)
    return keys


@contextlib.contextmanager
def make_gateway(
    keys: FileKeyStore,
    party: str = "wmp",
    at: datetime = AT,
    peer: str = "testclient",
    **limits: Any,
) -> Iterator[Gateway]:
    """A gateway publishing as ``party`` at ``at``, with ``limits`` (GatewayDeps') if given;
    ``peer``: the address every request comes from."""
    kafka = FakeKafka()
    publisher = Publisher(party, keys, kafka, envelope=X25519, clock=lambda: at,
                          send_timeout=0.3)  # fmt: skip
    registry = CollectorRegistry()
    deps = GatewayDeps(
        publisher=publisher, token=SecretStr(TOKEN),
        hosts=HostCheck.of(SignInSettings(host="127.0.0.1"), setting="test"),
        metrics=GatewayMetrics(registry, unready_for=30), **limits,
    )  # fmt: skip
    app = create_gateway_app(deps)
    with TestClient(app, base_url="http://127.0.0.1:8780", client=(peer, 50000)) as client:
        client.portal.call(publisher.start)  # type: ignore[union-attr]  # the client's loop
        try:
            yield Gateway(
                client, kafka, registry, SyntheticFamilies(seed=8, today=date(2026, 11, 22))
            )
        finally:
            client.portal.call(publisher.stop)  # type: ignore[union-attr]


@pytest.fixture
def gw(agency_keys: FileKeyStore) -> Iterator[Gateway]:
    with make_gateway(agency_keys) as gateway:
        yield gateway
