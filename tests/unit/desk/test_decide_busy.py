"""A decision the desk's database cannot take in time (another desk process holding it, past
the store's wait): nothing recorded, and the person told so on a page, never a 500; a
referral or outcome sent already is said to be sent but not recorded, and its page's button
records it once the database is free (sending it again under the same event id)."""

from __future__ import annotations

import html
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
from tests.unit.desk.test_send_failures import _resend_form

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


def test_a_referral_sent_that_the_busy_database_cannot_record_is_said_so_and_recorded_later(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection
) -> None:
    """Sent but not recorded (503, the event id logged); its page's button, pressed once the
    database is free, sends it again under the same event id and records it."""
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
    assert "the flags it settles are still open" in page
    assert {"event": "desk_referral_sent_not_recorded", "event_id": sent["event_id"],
            "log_level": "error"} in logs  # fmt: skip
    held.execute("ROLLBACK")
    assert store.decisions(child=child) == []
    again = _resend_form(r.text)
    r = client.post(f"/child/{child}/decide", data=again, follow_redirects=False)
    assert r.status_code == 303
    assert [e["event_id"] for e in publisher.events] == [sent["event_id"]] * 2
    [decision] = store.decisions(child=child)
    assert (decision.published_event, decision.flag_ids) == (sent["event_id"], (FLAG,))


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
    r = client.post("/referral/r1/outcome", data=_resend_form(r.text))
    assert "Outcome support offered sent" in r.text
    [first, second] = publisher.events
    assert first["event_id"] == second["event_id"]
    [decision] = store.decisions(subject_event="r1")
    assert decision.published_event == first["event_id"]


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
