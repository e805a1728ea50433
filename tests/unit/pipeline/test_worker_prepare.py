"""The worker reads its bundle, keystore and Kafka login before anything reaches the network:
a configuration error is the one thing the operator sees, not after the ops server's
certificate probe has already tried the brokers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.config import KafkaSettings, Settings
from broker.errors import AccordError, ConfigError
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.pipeline import Worker, WorkerOptions, serve
from broker.pipeline import _worker as worker_module
from broker.principals import Principal

REPO = Path(__file__).resolve().parents[3]


def _worker(home: Path, kafka: KafkaSettings | None = None) -> Worker:
    settings = Settings(home=home, policies=REPO / "policies")
    return Worker(
        settings,
        WorkerOptions(policies=REPO / "policies"),
        kafka=KafkaClients(kafka or KafkaSettings(username="worker", password="pw")),
        registry=CollectorRegistry(),
    )


@pytest.fixture
def ops_entered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def serving_ops(*_: Any, **__: Any) -> AsyncIterator[None]:
        entered.append("ops")
        yield

    monkeypatch.setattr(worker_module, "serving_ops", serving_ops)
    return entered


async def test_no_keystore_is_refused_before_the_ops_server_starts(
    tmp_path: Path, ops_entered: list[str]
) -> None:
    with pytest.raises(AccordError, match="keystore"):
        await serve(_worker(tmp_path))
    assert ops_entered == []


async def test_no_kafka_login_is_refused_before_the_ops_server_starts(
    tmp_path: Path, ops_entered: list[str]
) -> None:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party(Principal.WORKER)
    keys.set_linkage_key()
    with pytest.raises(ConfigError, match="no Kafka login"):
        await serve(_worker(tmp_path, KafkaSettings()))  # secured by default, no login
    assert ops_entered == []


async def test_without_a_keystore_passphrase_the_worker_refuses_to_start(
    tmp_path: Path, ops_entered: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secure by default: an unencrypted keystore is opened only under the explicit opt-out,
    which the tests set and this test removes."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party(Principal.WORKER)
    keys.set_linkage_key()
    monkeypatch.delenv("ACCORD_KEYSTORE__PROTECTION")
    with pytest.raises(ConfigError, match="no keystore passphrase"):
        await serve(_worker(tmp_path))
    assert ops_entered == []


async def test_the_ops_port_bound_for_port_0_is_told_before_the_worker_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``accord demo --metrics-port 0`` printed ``:0``: the port the server picked is told,
    and before the worker starts, so the demo can print where its metrics are."""
    from broker.config import WorkerSettings

    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party(Principal.WORKER)
    keys.set_linkage_key()
    worker = _worker(tmp_path)
    told: list[int] = []

    async def run(_stop: object) -> None:
        assert len(told) == 1  # told before the worker runs

    monkeypatch.setattr(worker, "run", run)
    await serve(worker, ops=WorkerSettings(metrics_port=0), listening=told.append)
    assert told[0] > 0
