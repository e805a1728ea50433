"""A hub's or school's desk that cannot reach Kafka says so on its home page and Records, as a
team's home page does: since when, and when it last heard from Kafka; nothing said while
Kafka answers. Its contact with Kafka (the ingest loop's ``KafkaContact``) is what tells."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from broker.desk import DeskDeps
from broker.desk._probes import KafkaContact
from tests.unit.desk.conftest import sign_in
from tests.unit.desk.test_probes import FakeConsumer

Make = Callable[..., tuple[TestClient, DeskDeps]]
ANSWERED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC).timestamp()
LOST = ANSWERED + 600  # ten minutes later


async def _contact(down: list[bool], wall: list[float], mono: list[float]) -> KafkaContact:
    contact = KafkaContact(
        CollectorRegistry(), lambda: FakeConsumer(down), every=30,
        clock=lambda: wall[0], monotonic=lambda: mono[0],
    )  # fmt: skip
    assert await contact.check()
    return contact


@pytest.mark.parametrize(
    ("kind", "party"), [("hub", "cog-west-bromwich"), ("school", "school-146201")]
)
async def test_a_hub_or_school_desk_that_cannot_reach_kafka_says_so_on_home_and_records(
    make_client: Make, kind: str, party: str
) -> None:
    down, wall, mono = [False], [ANSWERED], [0.0]
    contact = await _contact(down, wall, mono)
    client, _ = make_client(kind=kind, party=party, kafka_contact=contact)
    sign_in(client)
    for page in ("/", "/records"):
        assert 'id="kafka-unreachable"' not in client.get(page).text
    down[0], wall[0], mono[0] = True, LOST, 600.0
    assert not await contact.check()
    for page in ("/", "/records"):
        text = client.get(page).text
        assert 'id="kafka-unreachable" role="alert"' in text
        assert "The desk cannot reach Kafka since 2026-11-23 09:10 GMT" in text
        assert "the desk last heard from Kafka at 2026-11-23 09:00 GMT" in text
    down[0], wall[0], mono[0] = False, LOST + 60, 660.0
    assert await contact.check()
    assert 'id="kafka-unreachable"' not in client.get("/").text
