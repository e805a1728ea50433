"""A console whose Kafka fences its writer for a transaction that outlived the transaction
timeout (an outage: Kafka's own abort) carries on; one fenced within it was taken over, and
stops. Over the real ChainAppender and a fake Kafka (tests/unit/audit/test_append_bounded.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import GENESIS, AuditRecord, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.config import ConsoleSettings
from broker.console import ConsoleDeps, UserFile
from broker.console import create_app as console_app
from broker.console._instance import FenceWatch
from broker.governance import AuditStore, ChainAppender
from broker.governance import _append as append_module
from broker.keys import FileKeyStore
from broker.principals import Principal
from broker.webauth import device_key
from tests.unit.audit.test_append_bounded import FakeKafka, FakeProducer, Seconds
from tests.unit.console.conftest import sign_in

CHAIN = "console:ig-1"


@pytest.fixture(autouse=True)
def empty_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    async def head(*_: object, **__: object) -> tuple[int, str]:
        return -1, GENESIS

    monkeypatch.setattr(append_module, "chain_head_on_topic", head)


@pytest.fixture
def console(
    store: AuditStore, users: UserFile, keys: FileKeyStore, audit_home: Path,
    indexed: list[AuditRecord], clock: Callable[[], object],
) -> Callable[..., tuple[TestClient, FenceWatch]]:  # fmt: skip
    def make(*producers: FakeProducer, seconds: Seconds) -> tuple[TestClient, FenceWatch]:
        watch = FenceWatch(CHAIN)
        sink = ChainAppender(
            store, kafka=FakeKafka(*producers), chain=CHAIN,  # type: ignore[arg-type]  # a fake
            signer=KeystoreAuditSigner(keys, Principal.CONSOLE),
            verifier=KeystoreAuditVerifier(keys), elapsed_clock=seconds,
        )  # fmt: skip
        deps = ConsoleDeps(
            store=store, audit=sink, users=users,
            linkage_key=FileKeyStore(audit_home / "keys").linkage_key(),
            device_key=device_key(keys, "console", users.path, create=True),
            verifier=KeystoreAuditVerifier(keys), settings=ConsoleSettings(),
            clock=clock, chain=CHAIN, on_fenced=watch,  # type: ignore[arg-type]  # the Clock
        )  # fmt: skip
        return TestClient(console_app(deps), base_url="http://127.0.0.1:8765"), watch

    return make


def test_a_fence_after_kafka_held_the_append_past_its_timeout_is_an_outage_not_a_takeover(
    console: Callable[..., tuple[TestClient, FenceWatch]],
) -> None:
    """What a ~90 s Kafka outage did: the page says the audit topic is unreachable, the
    console does not stop, and its next page is recorded and shown."""
    seconds = Seconds()
    client, watch = console(
        FakeProducer(seconds, fenced_after=90), FakeProducer(seconds), seconds=seconds
    )
    sign_in(client)
    with capture_logs() as logs:
        r = client.get("/")
    assert r.status_code == 503
    assert "the audit topic is unreachable" in r.text
    assert "Another console" not in r.text
    assert not watch.fenced.is_set()
    assert [e["event"] for e in logs] == ["console_audit_unavailable"]
    assert "took longer than its transaction timeout" in logs[0]["error"]
    assert client.get("/").status_code == 200


def test_a_fence_soon_after_the_append_began_is_a_takeover_and_the_console_stops(
    console: Callable[..., tuple[TestClient, FenceWatch]],
) -> None:
    seconds = Seconds()
    client, watch = console(
        FakeProducer(seconds, fenced_after=2), FakeProducer(seconds), seconds=seconds
    )
    sign_in(client)
    r = client.get("/")
    assert r.status_code == 503
    assert "Another console took over this console&#39;s audit log" in r.text
    assert watch.fenced.is_set()
