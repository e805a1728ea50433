"""The broker's bound on a transaction's length: on the embedded node and in every rendered
cluster, and above what each of Accord's own transactional producers asks for (a producer
asking more fails when it starts)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from annotated_types import Le

from broker.config._gateway import GatewaySettings
from broker.config._settings import DeskSettings
from broker.deploy import deployment
from broker.deploy._compose_kafka import server_properties
from broker.deploy._strimzi import kafka
from broker.devkafka import TRANSACTION_MAX_TIMEOUT_MS, EmbeddedKafka
from broker.governance import _append
from broker.pipeline import _tasks
from broker.policy import load_bundle
from broker.sdk._bounded import DEFAULT_SEND_TIMEOUT, BoundedProducer

REPO = Path(__file__).resolve().parents[3]
KEY = "transaction.max.timeout.ms"


def _props(text: str) -> dict[str, str]:
    lines = (line for line in text.splitlines() if line and not line.startswith("#"))
    return dict(line.split("=", 1) for line in lines)


def test_the_bound_is_minutes_not_kafkas_fifteen() -> None:
    assert TRANSACTION_MAX_TIMEOUT_MS <= 5 * 60_000


def test_the_embedded_node_bounds_a_transaction(tmp_path: Path) -> None:
    node = EmbeddedKafka(tmp_path / "data", home=tmp_path, port=19092)
    config = node._write_config()  # what start() does before launching the JVM
    assert _props(config.read_text())[KEY] == str(TRANSACTION_MAX_TIMEOUT_MS)


def test_every_rendered_cluster_bounds_a_transaction() -> None:
    bundle = REPO / "policies"
    dep = deployment(load_bundle(bundle), bundle, brokers=3, partitions=3, image="a:1")
    for n in (1, 2, 3):
        props = _props(server_properties(dep, n, external_host="kafka.example.org"))
        assert props[KEY] == str(TRANSACTION_MAX_TIMEOUT_MS)
    assert kafka(dep, "accord")["spec"]["kafka"]["config"][KEY] == TRANSACTION_MAX_TIMEOUT_MS


class _Asked:
    def __init__(self) -> None:
        self.tuning: dict[str, Any] = {}

    def transactional_producer(self, transactional_id: str, client_id: str, **tuning: Any) -> Any:  # noqa: ARG002  # the seam's signature
        self.tuning = tuning
        return object()


def _largest(settings: type[Any]) -> float:
    field = settings.model_fields["send_timeout_seconds"]
    return max(m.le for m in field.metadata if isinstance(m, Le))


@pytest.mark.parametrize(
    "seconds",
    [DEFAULT_SEND_TIMEOUT, _largest(DeskSettings), _largest(GatewaySettings)],
    ids=["sdk-default", "desk-largest", "gateway-largest"],
)
def test_a_bounded_producer_at_its_largest_limit_asks_within_the_bound(seconds: float) -> None:
    asked = _Asked()
    BoundedProducer(asked, "c", timeout=seconds, transactional_id="t")._new()  # type: ignore[arg-type]
    assert 0 < asked.tuning["transaction_timeout_ms"] <= TRANSACTION_MAX_TIMEOUT_MS


def test_the_services_transactions_ask_within_the_bound() -> None:
    # Policy impact's producer asks aiokafka's default (broker.pipeline._impact).
    default = inspect.signature(aiokafka.AIOKafkaProducer).parameters["transaction_timeout_ms"]
    for ms in (
        _tasks.TRANSACTION_TIMEOUT_MS,  # the worker's tasks
        _append.TRANSACTION_TIMEOUT_S * 1000,  # the audit chain appenders (console, CLI)
        default.default,
    ):
        assert ms * 2 <= TRANSACTION_MAX_TIMEOUT_MS  # room for a slow commit, never a stall
