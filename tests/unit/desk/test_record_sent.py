"""Record it (a referral or outcome sent while the desk's database was busy): recorded at the
time it was sent, once across desk processes, by the desk itself in the background too, and
an outcome recorded beside a colleague's contrary one is said so (review cr11)."""

from __future__ import annotations

import asyncio
import html
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskStore, _record_sent, children_in
from broker.errors import RecordedAlready, StoreBusy
from tests.unit.desk.conftest import SECRET, Clock, FakePublisher, delivery, sign_in
from tests.unit.desk.test_decide_busy import _referral_unrecorded, held  # noqa: F401
from tests.unit.desk.test_decide_once import FLAG, _child_with_flag
from tests.unit.desk.test_send_failures import _resend_form

Make = Callable[..., tuple[TestClient, Any]]


def test_record_it_records_the_referral_at_the_time_it_was_sent_not_when_pressed(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    clock: Clock,
) -> None:  # fmt: skip
    """A record arriving between the send and the press stays new since the decision."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent_at = clock()
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    clock.advance(minutes=5)
    d = delivery("e3", sender="swbh")  # the hub never saw this one
    store.add_delivery(d, children_in(d.view, SECRET), clock())
    clock.advance(minutes=5)
    client.post(f"/child/{child}/decide", data=_resend_form(page))
    [decision] = store.decisions(child=child)
    assert decision.decided_at == sent_at
    assert [n[0] for n in store.new_since_decision()] == [child]


def test_a_record_it_whose_send_time_was_changed_records_nothing(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
) -> None:  # fmt: skip
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    form = _resend_form(page)
    [sent] = form["sent"]
    earlier = (datetime.fromisoformat(sent) - timedelta(days=1)).isoformat()
    for changed in ({**form, "sent": [earlier]}, {k: v for k, v in form.items() if k != "sent"}):
        r = client.post(f"/child/{child}/decide", data=changed)
        assert "This form cannot record the referral" in html.unescape(r.text)
    assert store.decisions(child=child) == []


def test_record_it_pressed_after_a_session_ended_is_drawn_again_with_the_send_time_kept(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    clock: Clock,
) -> None:  # fmt: skip
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent_at = clock()
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    client.cookies.clear()
    sign_in(client)  # another session: the page's CSRF token is stale
    clock.advance(minutes=5)
    again = client.post(f"/child/{child}/decide", data=_resend_form(page))
    assert "Record it" in again.text
    assert store.decisions(child=child) == []
    client.post(f"/child/{child}/decide", data=_resend_form(again.text))
    [decision] = store.decisions(child=child)
    assert decision.decided_at == sent_at


def test_two_desk_processes_pressing_record_it_at_once_record_the_referral_once(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
) -> None:  # fmt: skip
    """Another process records it between this one's press and its write: one row, and this
    page says it is recorded already (not that another decision settled its flag)."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
    real = store.decide
    first = [True]

    def decide(**kw: Any) -> Any:
        if first[0]:
            first[0] = False
            real(**kw)  # the other process, same event
        return real(**kw)

    store.decide = decide  # type: ignore[method-assign]
    r = client.post(f"/child/{child}/decide", data=_resend_form(page))
    store.decide = real  # type: ignore[method-assign]
    said = html.unescape(r.text)
    assert f"Referral {sent} was sent through the broker and is recorded already" in said
    assert "meanwhile another decision" not in said
    assert [d.published_event for d in store.decisions(child=child)] == [sent]


def test_a_published_event_is_one_decision_even_if_a_check_is_passed_at_once(
    store: DeskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique index refuses the second (PostgreSQL's check cannot see an uncommitted
    row): RecordedAlready, not a database error."""
    at = datetime(2026, 12, 7, 10, tzinfo=UTC)
    kw = {"action": "declined", "reason": "r", "by": "u", "at": at, "subject_event": "r1"}
    store.decide(**kw, published_event="p1")
    with pytest.raises(RecordedAlready):
        store.decide(**kw, published_event="p1")
    monkeypatch.setattr("broker.desk._store_locks.recorded_already", lambda *_: None)
    with pytest.raises(RecordedAlready):
        store.decide(**kw, published_event="p1")
    store.decide(**kw, published_event=None)
    store.decide(**kw, published_event=None)  # decisions publishing nothing are not limited
    assert len(store.decisions(subject_event="r1")) == 3


def _outcome_unrecorded(
    client: TestClient,
    token: str,
    store: DeskStore,
    held: sqlite3.Connection,  # noqa: F811
) -> str:
    held.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout=100")
    r = client.post(
        "/referral/r1/outcome",
        data={"csrf": token, "outcome": "support_offered", "summary": "Visit booked."},
    )
    held.execute("ROLLBACK")
    assert r.status_code == 503
    return r.text


def test_record_it_for_an_outcome_after_a_colleagues_contrary_one_records_it_and_says_so(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
) -> None:  # fmt: skip
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    page = _outcome_unrecorded(client, token, store, held)
    client.post(
        "/referral/r1/outcome",
        data={"csrf": token, "outcome": "declined", "summary": "Not needed."},
    )  # a colleague: the referral looked unanswered
    r = client.post("/referral/r1/outcome", data=_resend_form(page))
    said = html.unescape(r.text)
    assert "it is now recorded" in said
    assert "another outcome for this referral was sent and recorded too (declined by" in said
    assert "Contact the team to say which outcome stands." in said
    assert sorted(d.action for d in store.decisions(subject_event="r1")) == [
        "declined", "support_offered",
    ]  # fmt: skip


def test_record_it_for_an_outcome_is_dated_when_it_was_sent(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    clock: Clock,
) -> None:  # fmt: skip
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    sent_at = clock()
    page = _outcome_unrecorded(client, token, store, held)
    clock.advance(minutes=5)
    client.post("/referral/r1/outcome", data=_resend_form(page))
    [decision] = store.decisions(subject_event="r1")
    assert decision.decided_at == sent_at


def test_the_desk_keeps_trying_to_record_a_referral_it_sent_while_the_database_was_busy(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Nobody presses Record it (signed out): the desk records it by itself, at send time,
    and a later press finds it recorded already."""
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    child = _child_with_flag(store)
    client, _ = make_client()
    sent_at = clock()
    with client, capture_logs() as logs:  # one event loop for the requests and the retry
        token = sign_in(client)
        sent, page = _referral_unrecorded(client, token, child, store, publisher, held)
        assert "keeps trying to record it by itself" in html.unescape(page)
        clock.advance(minutes=5)
        deadline = time.monotonic() + 5
        while not store.decisions(child=child) and time.monotonic() < deadline:
            client.get("/login")  # lets the loop run
            time.sleep(0.05)
        [decision] = store.decisions(child=child)
        assert (decision.published_event, decision.decided_at) == (sent, sent_at)
        assert decision.flag_ids == (FLAG,)
        r = client.post(f"/child/{child}/decide", data=_resend_form(page))
        assert "is recorded already" in html.unescape(r.text)
    done = [e for e in logs if e["event"] == "desk_sent_recorded"]
    assert done == [{"event": "desk_sent_recorded", "event_id": sent, "by_retry": True,
                     "log_level": "info"}]  # fmt: skip


def test_the_background_retry_waits_out_a_busy_database_and_gives_up_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.01)
    calls: list[str] = []

    async def busy_twice() -> None:
        calls.append("a")
        if len(calls) < 3:
            raise StoreBusy

    async def always_busy() -> None:
        calls.append("b")
        raise StoreBusy

    async def run() -> None:
        retries = _record_sent.Retries()
        retries.start("ev-a", busy_twice)
        retries.start("ev-a", busy_twice)  # one task per event
        await asyncio.sleep(0.3)
        monkeypatch.setattr(_record_sent, "RETRY_FOR_SECONDS", 0.1)
        retries.start("ev-b", always_busy)
        await asyncio.sleep(0.4)

    with capture_logs() as logs:
        asyncio.run(run())
    assert calls.count("a") == 3
    assert 0 < calls.count("b") < 20
    assert [e["event"] for e in logs] == ["desk_sent_recorded", "desk_sent_record_retry_gave_up"]


def test_record_it_pressed_signed_out_does_not_ask_to_type_it_again(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
) -> None:  # fmt: skip
    """Its words were sent already: the sign-in page must not invite a second referral."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    client.cookies.clear()  # the session ended
    r = client.post(f"/child/{child}/decide", data=_resend_form(page), follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    assert "lost=1" not in r.headers["location"]
    form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert "lost=1" in r.headers["location"]  # a form typed and lost is still said so


def test_record_it_still_settles_a_flag_whose_records_were_withdrawn_after_the_send(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
) -> None:  # fmt: skip
    """The flag was open when the referral went: the referral settled it (docs/desk.md)."""
    child = _child_with_flag(store)
    client, _ = make_client()
    token = sign_in(client)
    _, page = _referral_unrecorded(client, token, child, store, publisher, held)
    store.hide(["e1", "e2"], "Consent withdrawn.", datetime.now(UTC))
    client.post(f"/child/{child}/decide", data=_resend_form(page))
    [decision] = store.decisions(child=child)
    assert (decision.action, decision.flag_ids) == ("refer", (FLAG,))


def test_the_desk_keeps_trying_to_record_an_outcome_it_sent_while_the_database_was_busy(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    clock: Clock, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sent_at = clock()
    with client:  # one event loop for the requests and the retry
        token = sign_in(client)
        _outcome_unrecorded(client, token, store, held)
        clock.advance(minutes=5)
        deadline = time.monotonic() + 5
        while not store.decisions(subject_event="r1") and time.monotonic() < deadline:
            client.get("/login")  # lets the loop run
            time.sleep(0.05)
    [decision] = store.decisions(subject_event="r1")
    assert (decision.action, decision.decided_at) == ("support_offered", sent_at)
    assert decision.published_event == publisher.events[0]["event_id"]
