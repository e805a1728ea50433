"""``run_gateway`` serves HTTPS when given a certificate, and stops cleanly when told."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from structlog.testing import capture_logs

from broker.config import GatewaySettings, KafkaSettings, Settings
from broker.crypto import tls_ca, tls_leaf
from broker.events import ContactEvent
from broker.gateway import GatewayRun, run_gateway
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.sdk import Receipt
from broker.topics import CONSENT
from tests.unit.gateway.conftest import TOKEN


class Confirming:
    """A publisher whose every record Kafka confirms (what is served is under test here)."""

    party, topic = "wmp", "accord.ingress.wmp"

    def validate(self, event: Mapping[str, Any]) -> ContactEvent:
        raise NotImplementedError

    async def publish(self, event: Mapping[str, Any]) -> Receipt:
        return Receipt(str(event["event_id"]), self.topic, 0, 0)

    async def publish_many(self, events: Iterable[ContactEvent]) -> list[Receipt]:
        raise NotImplementedError

    async def publish_consent(
        self, record: Mapping[str, Any], *, record_id: str | None = None
    ) -> Receipt:
        raise NotImplementedError


async def test_a_gateway_with_a_certificate_serves_https_and_stops_when_told(
    tmp_path: Path, agency_keys: FileKeyStore
) -> None:
    ca_cert, ca_key = tls_ca("gateway test CA", days=1)
    cert, key = tls_leaf(ca_cert, ca_key, "gw", hosts=["127.0.0.1"], days=1)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    gateway = GatewaySettings(port=0, token=SecretStr(TOKEN), tls_cert=tmp_path / "cert.pem",
                              tls_key=tmp_path / "key.pem")  # fmt: skip
    settings = Settings(home=tmp_path, gateway=gateway)
    kafka = KafkaClients(KafkaSettings(security_protocol="PLAINTEXT"))
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    serving = run_gateway(
        settings, "wmp", agency_keys, kafka, publisher=Confirming(), started=runs.append, stop=stop
    )
    task = asyncio.create_task(serving)
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    [run] = runs
    assert run.tls
    assert run.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cadata=ca_cert.decode())

    def post() -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310  # https, to the gateway under test
            f"{run.url}v1/events", data=json.dumps({"event_id": "e-1"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())

    assert await asyncio.to_thread(post) == (202, {"event_id": "e-1", "topic": run.topic})
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_sigterm_stops_the_gateway_and_logs_that_it_stopped(
    tmp_path: Path, agency_keys: FileKeyStore
) -> None:
    """``docker stop``, a unit's stop: the gateway closes and says so, as for Ctrl-C."""
    settings = Settings(home=tmp_path, gateway=GatewaySettings(port=0, token=SecretStr(TOKEN)))
    kafka = KafkaClients(KafkaSettings(security_protocol="PLAINTEXT"))
    runs: list[GatewayRun] = []
    with capture_logs() as logs:
        task = asyncio.create_task(
            run_gateway(
                settings, "wmp", agency_keys, kafka, publisher=Confirming(), started=runs.append
            )
        )
        for _ in range(100):
            if runs or task.done():
                break
            await asyncio.sleep(0.05)
        assert runs
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 15)
    events = [e["event"] for e in logs]
    assert events[0] == "gateway_started"
    assert events[-1] == "gateway_stopped"
    assert logs[-1]["party"] == "wmp"


class RefusingConsent(KafkaClients):
    """A cluster that does not let this party see, so write, ``accord.consent``."""

    async def may_describe(self, topic: str, timeout_ms: int = 3000) -> bool | None:  # noqa: ARG002
        return topic != CONSENT


async def test_a_served_gateway_asks_kafka_before_a_consent_write_and_quiets_aiokafkas_refusal(
    tmp_path: Path, agency_keys: FileKeyStore
) -> None:
    """The publisher is never reached (it would fail: 500), and aiokafka's error line for the
    consent topic is dropped while the gateway runs, not after."""
    settings = Settings(home=tmp_path, gateway=GatewaySettings(port=0, token=SecretStr(TOKEN)))
    kafka = RefusingConsent(KafkaSettings(security_protocol="PLAINTEXT"))
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_gateway(
            settings,
            "wmp",
            agency_keys,
            kafka,
            publisher=Confirming(),
            started=runs.append,
            stop=stop,
        )
    )
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    [run] = runs
    cluster = logging.getLogger("aiokafka.cluster")
    said = "Topic %s is not authorized for this client"  # aiokafka/cluster.py's words
    refusal = cluster.makeRecord(cluster.name, logging.ERROR, "", 0, said, (CONSENT,), None)
    assert not cluster.filter(refusal)

    def post() -> int:
        request = urllib.request.Request(  # noqa: S310  # http, to the gateway under test
            f"{run.url}v1/consents", data=b"{}",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert await asyncio.to_thread(post) == 403
    stop.set()
    await asyncio.wait_for(task, 15)
    assert cluster.filter(refusal)
