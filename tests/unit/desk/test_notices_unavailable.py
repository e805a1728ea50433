"""A school desk whose database cannot be reached still answers a scrape: the late-notices
gauge, which reads the store, is left out; the ops server's own gauges stay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog.testing
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from broker.desk import DeskDeps, DeskStore
from broker.desk._ingest_held import HELD_METRIC
from broker.desk._probes import CONTACT_METRIC
from broker.errors import StoreUnavailable

Make = Callable[..., tuple[TestClient, DeskDeps]]
LATE = "accord_desk_encompass_late_notices"


def _database_away(store: DeskStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def away(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the desk's database")

    monkeypatch.setattr(store, "records", away)


def test_the_pages_metrics_answer_without_the_late_gauge_while_the_database_is_away(
    make_client: Make, store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = make_client(kind="school", party="school-146201")
    assert f"{LATE} 0.0" in client.get("/metrics").text
    _database_away(store, monkeypatch)
    with structlog.testing.capture_logs() as logs:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert LATE not in answer.text
    assert [e["log_level"] for e in logs] == ["debug"]  # once a scrape: no warning each time


def test_the_ops_servers_own_gauges_stay_while_the_database_is_away(
    make_client: Make, store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the alerts read (AccordDeskDown is the scrape failing) keeps coming."""
    from broker.config import KafkaSecurity, KafkaSettings
    from broker.desk._serve import _ops_metrics
    from broker.kafka import KafkaClients

    _, deps = make_client(kind="school", party="school-146201")
    plain = KafkaClients(KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT))
    ops, _, _ = _ops_metrics(deps.registry, plain, "school-146201")
    _database_away(store, monkeypatch)
    text = generate_latest(ops).decode()
    assert CONTACT_METRIC in text
    assert HELD_METRIC in text
    assert LATE not in text
