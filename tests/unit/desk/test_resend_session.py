"""A not-sent page outlives its session: its re-send, pressed after signing in again, is drawn
again with the new session's token (nothing sent) and then goes as the same event; one the desk
cannot draw again is answered by a stale-form page that says not to start afresh. The page's
title says Error, its message takes the focus, Back goes to the form's page, the flags the
re-send settles are listed, and the timeout warning is told that the button is lost."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from broker.errors import SendUnconfirmed, TransportError
from tests.unit.desk.conftest import SECRET, T0, FakePublisher, csrf_of, delivery, sign_in
from tests.unit.desk.test_send_failures import _resend_form
from tests.unit.webauth.forms import error_summary

Make = Callable[..., tuple[TestClient, DeskDeps]]
FLAG = "f" * 32


def _child(store: DeskStore) -> str:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], T0)
    store.add_flag(
        Flag(flag_id=FLAG, party="sandwell-coord", rule="rule-f", title="Three police notices",
             child=child, event_ids=("e1",), trigger_event_id="e1", raised_at=T0,
             window_seconds=30 * 86400),
        T0,
    )  # fmt: skip
    return child


def _unconfirmed(
    client: TestClient, token: str, child: str, publisher: FakePublisher
) -> tuple[str, str]:
    """A referral the broker did not confirm: its event id and the not-sent page."""
    sent = publisher.publish

    async def unconfirmed(event: Mapping[str, Any]) -> None:
        publisher.events.append(dict(event))
        raise SendUnconfirmed("publishing to accord.ingress.x: the commit was under way")

    publisher.publish = unconfirmed  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    publisher.publish = sent  # type: ignore[method-assign]
    [first] = publisher.events
    return first["event_id"], r.text


def _sign_out_and_in(client: TestClient, token: str) -> str:
    client.post("/logout", data={"csrf": token})
    return sign_in(client)


def test_a_resend_pressed_after_signing_in_again_is_drawn_again_and_then_goes_as_the_same(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    first, page = _unconfirmed(client, token, child, publisher)
    fresh = _sign_out_and_in(client, token)
    again = _resend_form(page)
    assert again["csrf"] == [token]
    r = client.post(f"/child/{child}/decide", data=again)
    assert r.status_code == 409
    assert "from an earlier session, so nothing was sent just now" in error_summary(r.text)
    assert f"under the same event id ({first})" in r.text
    assert len(publisher.events) == 1  # nothing sent
    assert store.decisions() == []
    drawn = _resend_form(r.text)
    assert drawn["csrf"] == [fresh]
    r = client.post(f"/child/{child}/decide", data=drawn)
    assert "sent through the broker" in r.text
    assert [e["event_id"] for e in publisher.events] == [first, first]
    [decision] = store.decisions()
    assert decision.published_event == first
    assert list(decision.flag_ids) == [FLAG]


def test_a_resend_from_an_earlier_session_that_cannot_be_drawn_again_says_not_to_start_afresh(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """Changed (or another person's): the stale-form page, which does not advise typing the
    referral in again, and names the event to ask the hub about."""
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    first, page = _unconfirmed(client, token, child, publisher)
    _sign_out_and_in(client, token)
    again = {**_resend_form(page), "reason": ["Other words."]}
    r = client.post(f"/child/{child}/decide", data=again)
    assert r.status_code == 403
    assert re.search(r"<title>Error: Form from an earlier session", r.text)
    note = html.unescape(r.text)
    assert (
        f"Do not start a new referral: the first may have arrived. Ask the hub about event "
        f"{first}." in note
    )
    assert "paste it in and submit it" not in r.text
    assert 'id="stale-form-message" tabindex="-1" autofocus' in r.text
    assert len(publisher.events) == 1


def test_an_ordinary_stale_form_keeps_its_advice_and_says_error_in_its_title(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    _sign_out_and_in(client, token)
    r = client.post(f"/child/{child}/decide", data={"csrf": token, "action": "no_action"})
    assert r.status_code == 403
    assert re.search(r"<title>Error: Form from an earlier session", r.text)
    assert "paste it in and submit it" in r.text
    assert 'id="stale-form-note"' not in r.text


def test_the_not_sent_page_says_error_focuses_its_message_lists_its_flags_and_warns_the_timeout(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    first, page = _unconfirmed(client, token, child, publisher)
    assert re.search(r"<title>Error: The referral may have been sent", page)
    assert re.search(r'id="error-message" tabindex="-1" autofocus', page)
    assert re.search(r'<ul id="settles-list">\s*<li>Three police notices</li>', page)
    lost = re.search(r'data-lost="([^"]*)"', page)
    assert lost is not None
    said = html.unescape(lost.group(1))
    assert "Do not start a new referral" in said
    assert first in said
    # The 503's Back is the home page, which needs no acknowledgement while Kafka is away.
    assert 'href="/" id="not-sent-back"' in page


def test_a_refused_resend_goes_back_to_the_childs_page(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    _, page = _unconfirmed(client, token, child, publisher)
    _sign_out_and_in(client, token)
    r = client.post(f"/child/{child}/decide", data=_resend_form(page))
    assert r.status_code == 409
    assert f'href="/child/{child}" id="not-sent-back"' in r.text
    assert csrf_of(r.text)


def test_a_definitely_not_sent_page_tells_the_timeout_that_sending_again_is_safe(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """Not "the first may have arrived" on a page that says the referral was NOT sent."""
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)

    async def down(event: Mapping[str, Any]) -> None:
        raise TransportError("publishing to accord.ingress.x: KafkaConnectionError")

    publisher.publish = down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed.", "flag": FLAG}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    lost = re.search(r'data-lost="([^"]*)"', r.text)
    assert lost is not None
    said = html.unescape(lost.group(1))
    assert "keep this page open" in said
    assert "sending it again is safe" in said
    assert "may have arrived" not in said
    assert "Do not start a new referral" not in said
