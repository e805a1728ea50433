"""A decision the desk's database cannot take in time (another desk process holding it, past
the store's wait): nothing recorded, and the person told so on a page, never a 500; a
referral or outcome sent already is said to be sent but not recorded, and its page's button,
"Record it", records it once the database is free, sending nothing: whatever happened
meanwhile (its flag settled elsewhere, consent withdrawn, Kafka down, the database still busy,
the session timed out, the button pressed twice), every word the page said stays true."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, FakePublisher, delivery, sign_in
from tests.unit.desk.test_decide_once import FLAG, _child_with_flag
from tests.unit.desk.test_send_failures import _down, _resend_form
from tests.unit.webauth.forms import error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]


@pytest.fixture
def held(store: DeskStore, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another desk process on the store's database, mid-write once it has begun (``BEGIN
    IMMEDIATE``: its write lock taken); the store waits 0.1 s for it, not its 5."""
    other = sqlite3.connect(tmp_path / "desk" / "sandwell-coord.db", isolation_level=None)
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_a_decision_the_busy_database_cannot_take_is_refused_in_place_nothing_recorded(
    make_client: Make, store: DeskStore, held: sqlite3.Connection
) -> None:
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    form = {"csrf": token, "action": "signpost", "reason": "Leaflet sent.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    assert "The desk's database is busy" in html.unescape(r.text)
    assert "nothing was recorded. Try again in a moment." in html.unescape(r.text)
    assert "Leaflet sent." in r.text  # the form as posted
    held.execute("ROLLBACK")
    assert store.decisions(child=child) == []
    assert client.post(f"/child/{child}/decide", data=form).status_code == 200


def _referral_unrecorded(
    client: TestClient, token: str, child: str, store: DeskStore, publisher: FakePublisher,
    held: sqlite3.Connection,
) -> tuple[str, str]:  # fmt: skip
    """A referral sent while another desk process held the database: its event id and the
    sent-but-not-recorded page. The database is free again on return."""
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    held.execute("ROLLBACK")
    assert r.status_code == 503
    [sent] = publisher.events
    assert store.decisions(child=child) == []
    return sent["event_id"], r.text


def test_a_referral_sent_that_the_busy_database_cannot_record_is_said_so_and_recorded_later(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """Sent but not recorded (503, the event id logged); its page's button, "Record it",
    pressed once the database is free, records it and sends nothing again."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    with capture_logs() as logs:
        r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    [sent] = publisher.events
    page = html.unescape(r.text)
    assert "The referral was sent but not recorded" in page
    assert f"sent through the broker (event {sent['event_id']}), but this desk's database" in page
    assert "the flags below are not recorded as settled by it" in page
    assert (
        "keeps trying to record it by itself for the next 10 minutes; press “Record it” below "
        "in a moment to record it now: that sends nothing again." in page
    )
    assert re.search(r"<button[^>]*>Record it</button>", page)
    assert "sends the referral again" not in page
    lost = re.search(r'data-lost="([^"]*)"', r.text)
    assert lost is not None
    assert "press “Record it” here" in html.unescape(lost.group(1))
    assert {"event": "desk_referral_sent_not_recorded", "event_id": sent["event_id"],
            "log_level": "error"} in logs  # fmt: skip
    held.execute("ROLLBACK")
    assert store.decisions(child=child) == []
    again = _resend_form(r.text)
    assert "resend" not in again
    r = client.post(f"/child/{child}/decide", data=again)
    assert (
        f"Referral {sent['event_id']} was sent through the broker; it is now recorded. "
        "Nothing was sent again. It settles 1 flag(s)." in html.unescape(r.text)
    )
    assert [e["event_id"] for e in publisher.events] == [sent["event_id"]]
    [decision] = store.decisions(child=child)
    assert (decision.published_event, decision.flag_ids) == (sent["event_id"], (FLAG,))


def test_a_referral_sent_but_not_recorded_whose_flag_was_settled_since_is_recorded_settling_none(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """Another desk process settled its flag before the button was pressed: the referral
    went all the same, so it is recorded as sent, settling no flag, and the person told so
    (not refused as "cannot be sent again", leaving it unrecorded for good)."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    store.decide(action="signpost", reason="Leaflet.", by="kim", at=datetime.now(UTC),
                 child=child, flag_ids=[FLAG])  # fmt: skip
    r = client.post(f"/child/{child}/decide", data=_resend_form(page))
    assert r.status_code == 200
    said = html.unescape(r.text)
    assert (
        f"Referral {sent} was sent through the broker, but meanwhile another decision "
        "settled its flags." in said
    )
    assert "The referral is recorded as sent and settles no flag." in said
    assert len(publisher.events) == 1
    decided = {d.action: (d.published_event, d.flag_ids) for d in store.decisions(child=child)}
    assert decided == {"signpost": (None, (FLAG,)), "refer": (sent, ())}


def test_a_referral_sent_but_not_recorded_is_recorded_while_kafka_is_down_sending_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """Kafka away when the button is pressed: the page does not say "NOT sent" of a referral
    that went; it records it, as nothing needs sending."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    publisher.publish = _down  # type: ignore[method-assign]
    r = client.post(f"/child/{child}/decide", data=_resend_form(page), follow_redirects=False)
    assert r.status_code == 303
    assert "NOT sent" not in r.text
    [decision] = store.decisions(child=child)
    assert (decision.published_event, decision.flag_ids) == (sent, (FLAG,))


def test_a_referral_recorded_by_its_button_twice_is_recorded_once(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    again = _resend_form(page)
    client.post(f"/child/{child}/decide", data=again)
    r = client.post(f"/child/{child}/decide", data=again)
    assert (
        f"Referral {sent} was sent through the broker and is recorded already; nothing "
        "more was recorded." in html.unescape(r.text)
    )
    [decision] = store.decisions(child=child)
    assert decision.published_event == sent
    assert len(publisher.events) == 1


def test_recording_while_the_database_is_still_busy_draws_the_same_true_page_again(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    held.execute("BEGIN IMMEDIATE")
    r = client.post(f"/child/{child}/decide", data=_resend_form(page))
    held.execute("ROLLBACK")
    assert r.status_code == 503
    again = html.unescape(r.text)
    assert (
        f"The referral was sent through the broker (event {sent}), but this desk's "
        "database was busy" in again
    )
    assert re.search(r"<button[^>]*>Record it</button>", again)
    assert len(publisher.events) == 1
    assert store.decisions(child=child) == []
    client.post(f"/child/{child}/decide", data=_resend_form(r.text))
    [decision] = store.decisions(child=child)
    assert decision.published_event == sent


def test_a_record_button_pressed_after_signing_in_again_says_it_was_sent_and_then_records_it(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """The session timed out on the page: drawn again with the new session's token, saying
    nothing was recorded just now, never that nothing was sent; then it records it."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    client.post("/logout", data={"csrf": token})
    sign_in(client)
    r = client.post(f"/child/{child}/decide", data=_resend_form(page))
    assert r.status_code == 409
    assert "<title>Error: The referral was sent but not recorded" in r.text
    summary = error_summary(r.text)
    assert "from an earlier session, so nothing was recorded just now" in summary
    assert f"The referral was sent through the broker (event {sent})." in html.unescape(r.text)
    assert "nothing was sent" not in html.unescape(r.text).lower()
    assert store.decisions(child=child) == []
    client.post(f"/child/{child}/decide", data=_resend_form(r.text))
    [decision] = store.decisions(child=child)
    assert decision.published_event == sent
    assert len(publisher.events) == 1


def test_a_record_form_changed_or_carrying_a_resend_token_records_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """A re-send's token (its event may never have gone) cannot record, nor a record token
    other words than those sent."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sends = publisher.publish
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    not_sent = _resend_form(client.post(f"/child/{child}/decide", data=form).text)
    publisher.publish = sends  # type: ignore[method-assign]
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    record = _resend_form(page)
    for forged in (
        {**not_sent, "record": not_sent.pop("resend")},
        {**record, "reason": ["Other words."]},
    ):
        r = client.post(f"/child/{child}/decide", data=forged)
        assert "This form cannot record the referral" in html.unescape(r.text)
    assert store.decisions(child=child) == []
    assert len(publisher.events) == 1


def test_an_outcome_sent_that_the_busy_database_cannot_record_is_said_so_and_recorded_later(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    held.execute("ROLLBACK")
    assert r.status_code == 503
    assert "The outcome was sent but not recorded" in r.text
    assert store.decisions(subject_event="r1") == []
    assert re.search(r"<button[^>]*>Record it</button>", r.text)
    again = _resend_form(r.text)
    r = client.post("/referral/r1/outcome", data=again)
    [sent] = publisher.events
    assert (
        f"Outcome support offered (event {sent['event_id']}) was sent through the broker; "
        "it is now recorded. Nothing was sent again." in html.unescape(r.text)
    )
    [decision] = store.decisions(subject_event="r1")
    assert decision.published_event == sent["event_id"]
    r = client.post("/referral/r1/outcome", data=again)
    assert "is recorded already; nothing more was recorded." in r.text
    assert len(store.decisions(subject_event="r1")) == 1
    assert len(publisher.events) == 1


def test_an_outcome_sent_but_not_recorded_is_recorded_after_consent_was_withdrawn_kafka_down(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """It went before the family withdrew consent: it is recorded as sent (not refused as
    "cannot be sent again"), and nothing is sent, Kafka down or not."""
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    held.execute("ROLLBACK")
    assert r.status_code == 503
    [sent] = publisher.events
    store.hide(["r1"], "Consent withdrawn.", datetime.now(UTC))
    publisher.publish = _down  # type: ignore[method-assign]
    r = client.post("/referral/r1/outcome", data=_resend_form(r.text), follow_redirects=False)
    assert r.status_code == 303
    [decision] = store.decisions(subject_event="r1")
    assert (decision.action, decision.published_event) == ("support_offered", sent["event_id"])


def test_a_flag_close_the_busy_database_cannot_take_says_so_and_leaves_it_open(
    make_client: Make, store: DeskStore, held: sqlite3.Connection
) -> None:
    child = _child_with_flag(store)
    store.hide(["e1", "e2"], "Consent withdrawn.", datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    r = client.post(f"/child/{child}/close-withdrawn", data={"csrf": token, "flag": FLAG})
    assert r.status_code == 200
    assert "database is busy" in html.unescape(r.text)
    assert "the flag was not closed" in html.unescape(r.text)
    held.execute("ROLLBACK")
    assert store.decisions(child=child) == []
