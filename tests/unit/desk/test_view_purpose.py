"""One rule on every page: a person's opening of a record is acknowledged for the purpose the
record was shared for (what an IG officer checks its use against), never for the desk's kind
or the page's; several records shown at once go in one send per purpose."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, USER, FakeAcks, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _add(store: DeskStore, event_id: str, purpose: str, **view: object) -> None:
    d = delivery(event_id, **view).model_copy(update={"purpose": purpose})
    store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))


def test_the_timeline_acknowledges_each_record_for_its_own_purpose_one_send_each(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """Police shared for safeguarding, health for early help: not both "triage"."""
    _add(store, "p1", "safeguarding", sender="wmp")
    _add(store, "h1", "early_help", sender="swbh", type="health.ae_attendance")
    _add(store, "h2", "early_help", sender="swbh", type="health.ae_attendance")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/child/{child}").text
    assert "each for what it was shared for" in page
    assert "triage" not in page
    assert sorted(acks.sent) == [
        ("h1", USER, "early_help"), ("h2", USER, "early_help"), ("p1", USER, "safeguarding"),
    ]  # fmt: skip
    assert sorted(acks.sends) == [("early_help", ("h1", "h2")), ("safeguarding", ("p1",))]


def test_a_later_purposes_send_failing_shows_nothing(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    _add(store, "p1", "safeguarding")
    _add(store, "h1", "early_help")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    sign_in(client)
    acks.down = True
    page = client.get(f"/child/{child}")
    assert page.status_code == 503
    assert "Ruby" not in page.text


def test_a_hubs_referral_page_acknowledges_what_the_referral_was_shared_for(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    _add(store, "r1", "early_help", type="coordination.referral")
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sign_in(client)
    page = client.get("/referral/r1").text
    assert "viewed this referral, for early help (what it was shared for)" in page
    assert acks.sent == [("r1", USER, "early_help")]


def test_a_schools_notice_and_its_reading_acknowledge_what_it_was_shared_for(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    d = delivery("n1", recipient="school-146201", type="police.domestic_incident")
    store.add_delivery(d.model_copy(update={"purpose": "safeguarding"}), [], T0)
    client, _ = make_client(kind="school", party="school-146201")
    token = sign_in(client)
    page = client.get("/notice/n1").text
    assert "viewed this notice, for safeguarding (what it was shared for)" in page
    acks.sent.clear()
    client.post("/notice/n1/acknowledge", data={"csrf": token}, follow_redirects=False)
    assert acks.sent == [("n1", USER, "safeguarding")]  # the reading, as the opening


def test_the_same_record_is_acknowledged_alike_from_every_page_that_opens_it(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """The team's timeline, record page and NHS-number search: one purpose for one record."""
    _add(store, "p1", "safeguarding")
    [child] = children_in(delivery("x").view, SECRET)
    client, _ = make_client()
    token = sign_in(client)
    client.get(f"/child/{child}")
    client.get("/record/p1")
    client.post("/records/search", data={"csrf": token, "nhs_number": "9993080233"})
    assert acks.sent == [("p1", USER, "safeguarding")] * 3
