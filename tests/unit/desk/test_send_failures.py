"""A referral or outcome Kafka did not take: the person is told it was NOT sent, given back
what they wrote, and nothing is recorded as decided."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.errors import TransportError
from tests.unit.desk.conftest import SECRET, FakePublisher, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


async def _down(event: Mapping[str, Any]) -> None:
    raise TransportError("publishing to accord.ingress.x: Kafka did not answer within 5 s")


def test_a_referral_kafka_did_not_take_is_said_not_sent_and_the_reason_given_back(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed <b>today</b>."}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    assert "The referral was NOT sent" in r.text
    assert "Family agreed &lt;b&gt;today&lt;/b&gt;." in r.text  # escaped, to copy back
    assert store.decisions() == []


def test_an_outcome_kafka_did_not_take_is_said_not_sent_and_can_be_sent_again(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    sent = publisher.publish
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    assert r.status_code == 503
    assert "The outcome was NOT sent" in r.text
    assert "Visit booked." in r.text
    assert store.decisions(subject_event="r1") == []
    publisher.publish = sent  # type: ignore[method-assign]
    r = client.post("/referral/r1/outcome", data=form)
    assert "Outcome support offered sent" in r.text
    assert [e["outcome"] for e in publisher.events] == ["support_offered"]
