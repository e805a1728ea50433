"""A referral or outcome Kafka did not take: the person is told it was NOT sent (or, when the
broker cannot say, that it may have been), given back what they wrote in a form that sends it
again under the same event id, and nothing is recorded as decided."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskStore, children_in
from broker.errors import SendUnconfirmed, TransportError
from tests.unit.desk.conftest import SECRET, FakePublisher, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


async def _down(event: Mapping[str, Any]) -> None:
    raise TransportError("publishing to accord.ingress.x: Kafka did not answer within 5 s")


async def _unknown(event: Mapping[str, Any]) -> None:
    raise SendUnconfirmed("publishing to accord.ingress.x: Kafka did not answer within 5 s")


def _resend_form(page: str) -> dict[str, list[str]]:
    """The hidden fields of the not-sent page's re-send form (as the browser posts them)."""
    form = page[page.index('id="resend-form"') :]
    form = form[: form.index("</form>")]
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    unescape = {"&lt;": "<", "&gt;": ">", "&#34;": '"', "&#39;": "'", "&amp;": "&"}
    fields: dict[str, list[str]] = {}
    for k, v in found:
        fields.setdefault(k, []).append(
            re.sub(r"&(lt|gt|#34|#39|amp);", lambda m: unescape[m[0]], v)
        )
    return fields


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
    assert '<p id="chosen">Decision: <strong>refer</strong></p>' in r.text
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
    # What the button sends, the choice too, not only the summary.
    assert '<p id="chosen">Outcome: <strong>support offered</strong></p>' in r.text
    assert store.decisions(subject_event="r1") == []
    publisher.publish = sent  # type: ignore[method-assign]
    r = client.post("/referral/r1/outcome", data=form)
    assert "Outcome support offered sent" in r.text
    assert [e["outcome"] for e in publisher.events] == ["support_offered"]


def test_a_send_kafka_did_not_take_is_logged_as_the_referral_s_or_outcome_s_by_its_error_s_name(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """One log line per failed send, its event naming what was sent, and of the error only
    its class: its text (the topic, the timeout) may hold the page, never the words typed."""
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    publisher.publish = _down  # type: ignore[method-assign]
    team, _ = make_client()
    hub, _ = make_client(kind="hub", party="cog-west-bromwich")
    posts = [
        (team, f"/child/{child}/decide", {"action": "refer", "reason": "Family agreed."}),
        (hub, "/referral/r1/outcome", {"outcome": "support_offered", "summary": "Visit booked."}),
    ]
    failed = []
    for client, page, form in posts:
        token = sign_in(client)
        with capture_logs() as logs:
            assert client.post(page, data={"csrf": token, **form}).status_code == 503
        failed += [e for e in logs if e["event"].endswith("_failed")]
    assert failed == [
        {"event": "desk_referral_failed", "error": "TransportError", "log_level": "error"},
        {"event": "desk_outcome_failed", "error": "TransportError", "log_level": "error"},
    ]


def test_a_referral_the_broker_did_not_confirm_may_have_been_sent_and_goes_again_as_the_same(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    sent = publisher.publish
    tried: list[str] = []

    async def unknown(event: Mapping[str, Any]) -> None:
        tried.append(event["event_id"])
        await _unknown(event)

    publisher.publish = unknown  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed <b>today</b>."}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    assert "The referral may have been sent" in r.text
    assert "Check before sending it again" in r.text
    assert "NOT sent" not in r.text
    assert store.decisions() == []
    again = _resend_form(r.text)
    assert again["reason"] == ["Family agreed <b>today</b>."]
    publisher.publish = sent  # type: ignore[method-assign]
    r = client.post(f"/child/{child}/decide", data=again)
    assert "sent through the broker" in r.text
    # The same event: were the first in Kafka, the worker refuses this one as a replay.
    [event] = publisher.events
    assert event["event_id"] == tried[0]
    assert event["reference"] == f"DESK-{tried[0][:8].upper()}"
    [decision] = store.decisions()
    assert decision.published_event == tried[0]
    # A second click on the old page's button sends and records nothing more.
    r = client.post(f"/child/{child}/decide", data=again)
    assert "was sent already" in r.text
    assert len(publisher.events) == 1
    assert len(store.decisions()) == 1


def test_a_resend_id_this_desk_did_not_make_for_the_form_is_refused(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    sent = publisher.publish
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Family agreed."}
    r = client.post(f"/child/{child}/decide", data=form)
    again = _resend_form(r.text)
    publisher.publish = sent  # type: ignore[method-assign]
    event_id, mac = again["resend"][0].split(".")
    other = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"  # e.g. another party's event's id
    for forged in (f"{other}.{mac}", f"{event_id.upper()}.{mac}", f"{event_id}.", "x.y"):
        r = client.post(f"/child/{child}/decide", data={**again, "resend": [forged]})
        assert "This form cannot send the referral again" in r.text
    # The right token with other words: not this attempt (the hub would keep the first
    # words) and not a new one (the person meant this one).
    r = client.post(f"/child/{child}/decide", data={**again, "reason": ["Family declined."]})
    assert "This form cannot send the referral again" in r.text
    assert publisher.events == []
    assert store.decisions() == []


def test_an_outcome_sent_again_from_the_not_sent_page_keeps_its_event_id(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    sent = publisher.publish
    publisher.publish = _unknown  # type: ignore[method-assign]
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    assert r.status_code == 503
    assert "The outcome may have been sent" in r.text
    again = _resend_form(r.text)
    event_id = again["resend"][0].split(".")[0]
    publisher.publish = sent  # type: ignore[method-assign]
    r = client.post("/referral/r1/outcome", data=again)
    assert "Outcome support offered sent" in r.text
    assert [e["event_id"] for e in publisher.events] == [event_id]
    [decision] = store.decisions(subject_event="r1")
    assert decision.published_event == event_id


def test_a_resend_whose_line_breaks_a_browser_posted_as_cr_lf_is_still_the_same_attempt(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """A browser posts a field's line breaks as CR LF whatever the page held: the re-send's
    MAC is over the words, not their line endings."""
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], datetime.now(UTC))
    client, _ = make_client()
    token = sign_in(client)
    sent = publisher.publish
    publisher.publish = _down  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": "Mum rang.\nShe asked for help."}
    r = client.post(f"/child/{child}/decide", data=form)
    again = _resend_form(r.text)
    event_id = again["resend"][0].split(".")[0]
    publisher.publish = sent  # type: ignore[method-assign]
    posted = {**again, "reason": ["Mum rang.\r\nShe asked for help."]}
    r = client.post(f"/child/{child}/decide", data=posted)
    assert "sent through the broker" in r.text
    assert [e["event_id"] for e in publisher.events] == [event_id]
