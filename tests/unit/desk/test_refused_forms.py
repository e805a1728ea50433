"""A form the desk refuses for something the person can put right is drawn again in place (400,
or 409 for a conflict), its problem in the error summary and every control as it was posted,
escaped; what was typed is in that response only (no session, flash, log or address), and the
corrected form goes through. A re-send refused is never drawn into that editable form: its own
page comes back with nothing changeable, since one event id must carry one content."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from broker.errors import SendUnconfirmed
from tests.unit.desk.conftest import SECRET, T0, FakePublisher, delivery, sign_in
from tests.unit.webauth.forms import (
    control_tag,
    error_summary,
    nowhere_but_the_page,
    posted_form,
    value_of,
)

Make = Callable[..., tuple[TestClient, DeskDeps]]
A, B, C = "a" * 32, "b" * 32, "c" * 32
TYPED = "Mum rang at 9.\nShe said <script>alert('x')</script> & asked for help."


def _child(store: DeskStore, *, hidden: bool = True) -> str:
    """e1, e2, e3 about one child; flag A on e1 and e2 (withdrawn if ``hidden``), flags B and
    C on all three."""
    for eid in ("e1", "e2", "e3"):
        d = delivery(eid)
        store.add_delivery(d, children_in(d.view, SECRET), T0)
    [child] = children_in(delivery("x").view, SECRET)
    for flag_id, ids in ((A, ("e1", "e2")), (B, ("e1", "e2", "e3")), (C, ("e1", "e2", "e3"))):
        store.add_flag(
            Flag(flag_id=flag_id, party="sandwell-coord", rule=f"rule-{flag_id[0]}",
                 title=f"Rule {flag_id[0]}", child=child, event_ids=ids,
                 trigger_event_id=ids[-1], raised_at=T0, window_seconds=30 * 86400),
            T0,
        )  # fmt: skip
    if hidden:
        store.hide(["e1", "e2"], "Consent withdrawn for early help.", T0)
    return child


def _drawn_again(r: Any, field: str | None, status: int = 400) -> None:
    """Answered in place, not redirected: the page an error summary at its top, focused,
    naming the field, which is marked; the title says Error."""
    assert r.status_code == status, r.text
    assert "location" not in r.headers
    summary = error_summary(r.text)
    assert 'tabindex="-1" autofocus' in summary
    assert re.search(r"<title>Error: ", r.text)
    if field is not None:
        assert f'href="#{field}"' in summary
        assert 'aria-invalid="true"' in control_tag(r.text, field)


def _dict_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Fields as TestClient posts repeated names."""
    out: dict[str, list[str]] = {}
    for k, v in fields:
        out.setdefault(k, []).append(v)
    return out


def _sessions(client: TestClient) -> Any:
    return client.app.state.desk.sessions._sessions  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("action", "reason", "field"),
    [("", TYPED, "action"), ("signpost", TYPED + " " + "x" * 2000, "reason")],
)
def test_a_refused_decision_is_drawn_again_with_the_decision_reason_and_flags_as_posted(
    make_client: Make, store: DeskStore, action: str, reason: str, field: str
) -> None:
    child = _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": action, "reason": reason, "flag": [B]}  # C left unticked
    with structlog.testing.capture_logs() as logs:
        r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    _drawn_again(r, field)
    said = error_summary(r.text)
    if action:  # chosen: the summary says by how much the reason is over, not to choose
        assert f"The reason is {len(reason.strip()):,} characters; it can be at most 2,000." in said
    else:
        assert "Choose a decision." in said
        assert "give a reason" not in said  # it was given
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; asked" in r.text
    assert "<script>alert" not in r.text
    assert f'data-next="/child/{child}"' in r.text  # signing in again returns to the page
    again = posted_form(r.text, "decide")
    assert value_of(again, "reason") == [reason]
    assert value_of(again, "action") == ([action] if action else [])
    assert value_of(again, "flag") == [B]
    assert value_of(again, "csrf") == [token]
    assert value_of(again, "resend") == []
    nowhere_but_the_page([TYPED], sessions=_sessions(client), logs=logs, location=None)
    assert store.decisions() == []

    fixed = [(k, v) for k, v in again if k not in ("action", "reason")]
    fixed += [("action", "signpost"), ("reason", TYPED)]
    r = client.post(f"/child/{child}/decide", data=_dict_of(fixed), follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/child/{child}")
    [decision] = store.decisions()
    assert (decision.action, decision.reason, decision.flag_ids) == ("signpost", TYPED, (B,))


def test_a_referral_settling_a_withdrawn_flag_is_a_conflict_drawn_again_with_the_reason(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "refer", "reason": TYPED, "flag": [A, B]}  # an old page
    with structlog.testing.capture_logs() as logs:
        r = client.post(f"/child/{child}/decide", data=form)
    _drawn_again(r, "action", status=409)
    assert "cannot be settled by a referral" in error_summary(r.text)
    again = posted_form(r.text, "decide")
    assert value_of(again, "action") == ["refer"]
    assert value_of(again, "reason") == [TYPED]
    assert value_of(again, "flag") == [B]  # the withdrawn flag is not offered
    nowhere_but_the_page([TYPED], sessions=_sessions(client), logs=logs, location=None)
    assert publisher.events == []

    r = client.post(f"/child/{child}/decide", data=_dict_of(again))
    assert "sent through the broker" in r.text
    [event] = publisher.events
    assert event["summary"] == TYPED


def _resend_fields(page: str) -> dict[str, list[str]]:
    return _dict_of(posted_form(page, "resend-form"))


def _unconfirmed_referral(
    client: TestClient, child: str, token: str, publisher: FakePublisher, flags: list[str]
) -> tuple[str, dict[str, list[str]]]:
    """A referral Kafka wrote but the broker did not confirm: its event id and the hidden
    fields of the page's "Send the referral again" form."""
    sent = publisher.publish

    async def unconfirmed(event: Mapping[str, Any]) -> None:
        publisher.events.append(dict(event))  # Kafka took it; the broker did not confirm
        raise SendUnconfirmed("publishing to accord.ingress.x: the commit was under way")

    publisher.publish = unconfirmed  # type: ignore[method-assign]
    form = {"csrf": token, "action": "refer", "reason": TYPED, "flag": flags}
    r = client.post(f"/child/{child}/decide", data=form)
    assert r.status_code == 503
    publisher.publish = sent  # type: ignore[method-assign]
    [first] = publisher.events
    return first["event_id"], _resend_fields(r.text)


def _nothing_to_change(page: str) -> None:
    """The page's only form that sends anything is the re-send form, and every control in it
    is hidden: no decision form, no textarea, select or visible input."""
    assert 'id="decide"' not in page
    assert 'id="outcome-form"' not in page
    form = page[page.index('id="resend-form"') :]
    form = form[: form.index("</form>")]
    assert "<textarea" not in form
    assert "<select" not in form
    assert all('type="hidden"' in tag for tag in re.findall(r"<input[^>]*>", form))


def test_a_resend_refused_is_its_own_page_again_unchanged_and_goes_as_the_same_attempt(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    child = _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    first, resend = _unconfirmed_referral(client, child, token, publisher, [A, B])
    store.hide(["e1", "e2"], "Consent withdrawn for early help.", T0)  # A withdrawn since

    r = client.post(f"/child/{child}/decide", data=resend)
    assert r.status_code == 409
    assert "location" not in r.headers
    assert re.search(r"<title>Error: The referral was not sent again", r.text)
    said = error_summary(r.text)
    assert f"The earlier attempt, event {first}, may have reached the hub" in said
    assert "exactly as written here and under the same event id" in r.text
    assert "The referral no longer settles the flag whose records were all withdrawn" in r.text
    _nothing_to_change(r.text)
    again = _resend_fields(r.text)
    assert (again["action"], again["reason"], again["flag"]) == (["refer"], [TYPED], [B])
    assert again["resend"][0].startswith(f"{first}.")
    assert len(publisher.events) == 1  # nothing more
    assert store.decisions() == []

    r = client.post(f"/child/{child}/decide", data=again)
    assert "sent through the broker" in r.text
    assert [e["event_id"] for e in publisher.events] == [first, first]  # the same attempt
    assert publisher.events[1]["summary"] == publisher.events[0]["summary"] == TYPED
    [decision] = store.decisions()
    assert (decision.published_event, decision.reason, decision.flag_ids) == (first, TYPED, (B,))


def test_a_resend_edited_after_its_refusal_publishes_nothing_under_the_first_event_id(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """The review's case: a referral with reason A Kafka wrote unconfirmed; sending it again
    refused (a flag withdrawn since); the reason changed to B, or the flags, and posted. The
    hub keeps A (the worker drops a replay), so nothing may go under that id with B, and no
    decision may be stored that says B went."""
    child = _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    first, resend = _unconfirmed_referral(client, child, token, publisher, [A, B])
    store.hide(["e1", "e2"], "Consent withdrawn for early help.", T0)
    r = client.post(f"/child/{child}/decide", data=resend)
    again = _resend_fields(r.text)

    edits: list[dict[str, list[str]]] = [
        {**again, "reason": ["Something else entirely."]},
        {**again, "reason": [TYPED + " And more."]},
        {**again, "flag": [B, C]},
        {**again, "flag": []},
    ]
    for edited in edits:
        r = client.post(f"/child/{child}/decide", data=edited)
        assert r.status_code == 403
        assert "This form cannot send the referral again" in r.text
        assert "Nothing was sent" in r.text
        assert first not in r.text
    assert len(publisher.events) == 1  # only the first attempt
    assert store.decisions() == []

    r = client.post(f"/child/{child}/decide", data=again)  # unedited: still the same attempt
    assert "sent through the broker" in r.text
    assert [e["event_id"] for e in publisher.events] == [first, first]
    [decision] = store.decisions()
    assert (decision.published_event, decision.reason) == (first, TYPED)


def test_a_resend_sent_already_leaves_a_fresh_form_from_which_a_new_referral_goes(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """The old page's button once more: 409, nothing sent, and the decision form drawn fresh
    (no token, nothing pre-filled), so a later "refer" from it is a new referral, not refused
    as sent already and not a copy made by a second click."""
    child = _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    first, resend = _unconfirmed_referral(client, child, token, publisher, [B])
    r = client.post(f"/child/{child}/decide", data=resend)
    assert "sent through the broker" in r.text

    r = client.post(f"/child/{child}/decide", data=resend)
    _drawn_again(r, None, status=409)
    assert f"Referral {first} was sent already; nothing more was sent." in error_summary(r.text)
    fresh = posted_form(r.text, "decide")
    assert value_of(fresh, "resend") == []
    assert value_of(fresh, "action") == []
    assert value_of(fresh, "reason") == [""]
    assert len(publisher.events) == 2

    fresh += [("action", "refer"), ("reason", "A new concern since.")]
    r = client.post(f"/child/{child}/decide", data=_dict_of(fresh))
    assert "sent through the broker" in r.text
    assert len(publisher.events) == 3
    new = publisher.events[2]
    assert new["event_id"] != first
    assert new["summary"] == "A new concern since."
    assert sorted(d.reason for d in store.decisions()) == sorted([TYPED, "A new concern since."])


def test_a_forged_resend_token_is_not_drawn_back_into_the_form(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    other = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    form = {"csrf": token, "action": "", "reason": TYPED, "resend": f"{other}.00"}
    r = client.post(f"/child/{child}/decide", data=form)
    _drawn_again(r, "action")
    assert other not in r.text


def _referral(store: DeskStore) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), T0)


def test_a_refused_outcome_is_drawn_again_with_the_outcome_and_summary_as_posted(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    _referral(store)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    form = {"csrf": token, "outcome": "support_offered", "summary": "   "}
    r = client.post("/referral/r1/outcome", data=form)
    _drawn_again(r, "summary")
    # The outcome was chosen: only the summary is asked for.
    assert "Give a summary (up to 2,000 characters)." in error_summary(r.text)
    assert "Choose" not in error_summary(r.text)
    assert value_of(posted_form(r.text, "outcome-form"), "outcome") == ["support_offered"]
    form = {"csrf": token, "outcome": "", "summary": TYPED}
    with structlog.testing.capture_logs() as logs:
        r = client.post("/referral/r1/outcome", data=form)
    _drawn_again(r, "outcome")
    assert "Choose an outcome." in error_summary(r.text)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in r.text
    assert "<script>alert" not in r.text
    assert 'data-next="/referral/r1"' in r.text
    again = posted_form(r.text, "outcome-form")
    assert value_of(again, "summary") == [TYPED]
    nowhere_but_the_page([TYPED], sessions=_sessions(client), logs=logs, location=None)
    assert publisher.events == []

    again = [(k, v) for k, v in again if k != "outcome"] + [("outcome", "support_offered")]
    r = client.post("/referral/r1/outcome", data=_dict_of(again), follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/referral/r1")
    [event] = publisher.events
    assert (event["outcome"], event["summary"]) == ("support_offered", TYPED.strip())

    # A second outcome for an answered referral is a conflict; nothing more is sent.
    r = client.post("/referral/r1/outcome", data=_dict_of(again))
    _drawn_again(r, None, status=409)
    assert "This referral has an outcome already: it was answered by kim.ward" in r.text
    assert "Nothing was sent" in r.text
    assert len(publisher.events) == 1


def test_a_refused_search_keeps_the_reference_but_never_the_nhs_number(
    make_client: Make, store: DeskStore
) -> None:
    _child(store, hidden=False)
    client, _ = make_client()
    token = sign_in(client)
    with structlog.testing.capture_logs() as logs:
        form = {"csrf": token, "reference": "WMP/26/1<b>", "nhs_number": "99930802"}
        r = client.post("/records/search", data=form)
    _drawn_again(r, "nhs_number")
    assert "That NHS number is not valid" in error_summary(r.text)
    assert 'value="WMP/26/1&lt;b&gt;"' in r.text
    assert "99930802" not in r.text
    assert 'data-next="/records"' in r.text
    again = posted_form(r.text, "search")
    assert value_of(again, "reference") == ["WMP/26/1<b>"]
    assert value_of(again, "nhs_number") == [""]
    nowhere_but_the_page(["99930802", "WMP/26/1<b>"], sessions=_sessions(client), logs=logs,
                         location=None)  # fmt: skip

    r = client.post("/records/search", data={"csrf": token, "nhs_number": "", "reference": ""})
    _drawn_again(r, "reference")

    fixed = _dict_of([(k, v) for k, v in again if k != "reference"] + [("reference", "WMP/26/1")])
    r = client.post("/records/search", data=fixed)
    assert r.status_code == 200
    assert "3 record(s) found." in r.text


def _unconfirmed_outcome(
    client: TestClient, token: str, publisher: FakePublisher
) -> tuple[str, dict[str, list[str]]]:
    """An outcome Kafka wrote but the broker did not confirm: its event id and the hidden
    fields of the page's "Send the outcome again" form."""
    sent = publisher.publish

    async def unconfirmed(event: Mapping[str, Any]) -> None:
        publisher.events.append(dict(event))
        raise SendUnconfirmed("publishing to accord.ingress.x: the commit was under way")

    publisher.publish = unconfirmed  # type: ignore[method-assign]
    form = {"csrf": token, "outcome": "support_offered", "summary": TYPED}
    r = client.post("/referral/r1/outcome", data=form)
    assert r.status_code == 503
    publisher.publish = sent  # type: ignore[method-assign]
    [first] = publisher.events
    return first["event_id"], _resend_fields(r.text)


def test_an_outcome_resend_edited_publishes_nothing_under_the_first_event_id(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    _referral(store)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    first, resend = _unconfirmed_outcome(client, token, publisher)
    for edited in ({**resend, "summary": ["Declined."]}, {**resend, "outcome": ["declined"]}):
        r = client.post("/referral/r1/outcome", data=edited)
        assert r.status_code == 403
        assert "This form cannot send the outcome again" in r.text
    assert len(publisher.events) == 1
    assert store.decisions(subject_event="r1") == []

    r = client.post("/referral/r1/outcome", data=resend)
    assert "Outcome support offered sent" in r.text
    assert [e["event_id"] for e in publisher.events] == [first, first]
    [decision] = store.decisions(subject_event="r1")
    assert (decision.published_event, decision.reason) == (first, TYPED.strip())

    # The old page's button once more: sent already, and no form is left to send another.
    r = client.post("/referral/r1/outcome", data=resend)
    _drawn_again(r, None, status=409)
    assert f"Outcome {first} was sent already; nothing more was sent." in error_summary(r.text)
    assert 'id="outcome-form"' not in r.text
    assert len(publisher.events) == 2


def test_an_outcome_resend_refused_for_good_is_its_own_page_again_without_a_button(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """The referral withdrawn since: nothing will let the re-send go from here, so the page
    offers no button and no "once what stopped it has been put right", and Back goes to the
    referral's page."""
    _referral(store)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    first, resend = _unconfirmed_outcome(client, token, publisher)
    store.hide(["r1"], "Consent withdrawn for early help.", T0)
    r = client.post("/referral/r1/outcome", data=resend)
    assert r.status_code == 409
    said = error_summary(r.text)
    assert (
        "The outcome could not be sent again: the family has withdrawn consent to this "
        "referral since" in said
    )
    assert f"event {first}, may have reached the co-ordinating team" in said
    assert 'id="resend-form"' not in r.text
    assert 'id="outcome-form"' not in r.text
    assert "once what stopped it" not in r.text
    assert "Mum rang at 9." in r.text  # still shown, to copy
    assert 'href="/referral/r1" id="not-sent-back"' in r.text
    # Kept open at a timeout for what it says, with no button to send it again from.
    lost = re.search(r'data-lost="([^"]*)"', r.text)
    assert lost is not None
    assert "keep this page open: it says what became of the outcome" in lost.group(1)
    assert "Send the outcome again" not in lost.group(1)
    assert len(publisher.events) == 1
    assert store.decisions(subject_event="r1") == []


def test_an_outcome_recorded_since_refuses_the_resend_without_denying_the_earlier_attempt(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """A colleague recorded an outcome from a fresh form meanwhile: the re-send is refused,
    says the earlier attempt may have reached the team, and leaves no form to post."""
    _referral(store)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    first, resend = _unconfirmed_outcome(client, token, publisher)
    other = {"csrf": token, "outcome": "declined", "summary": "Family declined."}
    client.post("/referral/r1/outcome", data=other)
    r = client.post("/referral/r1/outcome", data=resend)
    _drawn_again(r, None, status=409)
    said = error_summary(r.text)
    assert "The outcome could not be sent again: this referral has had an outcome" in said
    assert f"event {first}, may have reached the co-ordinating team" in said
    assert "nothing was sent" not in said.lower()
    assert 'id="outcome-form"' not in r.text
    assert [e["outcome"] for e in publisher.events] == ["support_offered", "declined"]


def test_an_outcome_for_a_referral_withdrawn_since_says_consent_was_withdrawn(
    make_client: Make, store: DeskStore, publisher: FakePublisher
) -> None:
    """Not "cannot be answered from here": the family withdrew consent, nothing was sent,
    stop using the record; no empty Outcome heading under it."""
    _referral(store)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    store.hide(["r1"], "Consent withdrawn for early help.", T0)
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked."}
    r = client.post("/referral/r1/outcome", data=form)
    assert r.status_code == 409
    said = error_summary(r.text)
    assert "The family has withdrawn consent to this referral" in said
    assert "nothing was sent" in said
    assert "Stop using this record." in said
    assert "<h2>Outcome</h2>" not in r.text
    assert 'id="outcome-form"' not in r.text
    assert publisher.events == []
