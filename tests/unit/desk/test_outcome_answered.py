"""Two caseworkers answer the same referral: the second is refused (409) with who answered, when
and how (as a team's decision about a flag settled since is told), and since the outcome form
has gone, what she typed comes back read only, escaped, for her case system; it is in that
response only, and nothing is sent. The trap the hub's home page warns of (an outcome sent
from the case system is unknown here, so this form would send a second) is said beside the
outcome form too, in plain words."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog.testing
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.webauth import UserFile
from tests.unit.desk.conftest import PASSWORD, SECRET, T0, FakePublisher, csrf_of, delivery
from tests.unit.desk.conftest import sign_in as sign_in_sam
from tests.unit.webauth.forms import error_summary, nowhere_but_the_page

Make = Callable[..., tuple[TestClient, DeskDeps]]
HUB = "cog-west-bromwich"
PRIYA = "priya.shah"
TYPED = "Mum rang at 9.\r\nShe said <script>alert('x')</script> & asked for help."
ESCAPED = "She said &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; asked for help."


def _referral(store: DeskStore) -> None:
    referral = delivery("r1", recipient=HUB, type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), T0)


def _sign_in_priya(client: TestClient, users: UserFile) -> str:
    users.add(PRIYA, PASSWORD)
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"username": PRIYA, "password": PASSWORD, "csrf": token},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/").text)


def _sessions(client: TestClient) -> Any:
    return client.app.state.desk.sessions._sessions  # type: ignore[attr-defined]


def test_a_second_outcome_names_who_answered_and_gives_back_what_was_typed_read_only(
    make_client: Make, store: DeskStore, users: UserFile, publisher: FakePublisher
) -> None:
    _referral(store)
    sam, _ = make_client(kind="hub", party=HUB)
    priya, _ = make_client(kind="hub", party=HUB)
    sam_token = sign_in_sam(sam)
    priya_token = _sign_in_priya(priya, users)
    assert 'id="outcome-form"' in sam.get("/referral/r1").text
    assert 'id="outcome-form"' in priya.get("/referral/r1").text

    form = {"csrf": sam_token, "outcome": "closed", "summary": "Family moved away."}
    assert sam.post("/referral/r1/outcome", data=form, follow_redirects=False).status_code == 303
    form = {"csrf": priya_token, "outcome": "declined", "summary": TYPED}
    with structlog.testing.capture_logs() as logs:
        r = priya.post("/referral/r1/outcome", data=form)

    assert r.status_code == 409
    said = error_summary(r.text)
    # Who, when (the desk's local time) and how, as the team's flag-settled-since refusal.
    assert (
        "answered by kim.ward at 2026-11-23 10:00 GMT (closed) after this page was loaded" in said
    )
    assert "Nothing was sent" in said
    assert 'id="outcome-form"' not in r.text  # answered: no form to put it back into
    typed = re.search(r'<section[^>]*id="not-sent-typed".*?</section>', r.text, re.S)
    assert typed, "what was typed is not given back"
    assert '<span id="typed-outcome">declined</span>' in typed.group(0)
    summary = re.search(r'<blockquote class="said" id="typed-summary">(.*?)</blockquote>',
                        typed.group(0), re.S)  # fmt: skip
    assert summary
    assert summary.group(1) == "Mum rang at 9.\r\n" + ESCAPED  # its line break kept
    assert "<script>alert" not in r.text
    assert "<textarea" not in typed.group(0)  # read only
    assert "<input" not in typed.group(0)
    nowhere_but_the_page([TYPED, "asked for help"], sessions=_sessions(priya), logs=logs,
                         location=None)  # fmt: skip
    assert [e["outcome"] for e in publisher.events] == ["closed"]
    assert [d.action for d in store.decisions(subject_event="r1")] == ["closed"]


def test_an_outcome_refused_for_another_reason_is_not_shown_as_not_sent_typed_text(
    make_client: Make, store: DeskStore
) -> None:
    """Only an answered referral, whose form has gone, shows the words read only: a form
    refused for something the person can put right gets them back in the form."""
    _referral(store)
    client, _ = make_client(kind="hub", party=HUB)
    token = sign_in_sam(client)
    r = client.post("/referral/r1/outcome", data={"csrf": token, "outcome": "", "summary": TYPED})
    assert r.status_code == 400
    assert 'id="not-sent-typed"' not in r.text
    assert 'id="outcome-form"' in r.text


def test_the_outcome_form_warns_that_an_outcome_sent_from_the_case_system_is_unknown_here(
    make_client: Make, store: DeskStore
) -> None:
    _referral(store)
    client, _ = make_client(kind="hub", party=HUB)
    sign_in_sam(client)
    page = client.get("/referral/r1").text
    form = re.search(r'<form[^>]*id="outcome-form".*?</form>', page, re.S)
    assert form
    assert 'id="outcomes-here-only"' in form.group(0)
    assert "from your case system" in form.group(0)
    assert "sends the team a second" in form.group(0)
    home = client.get("/").text
    assert "from your case system" in home
    assert "sends the team a second" in home
    assert "accord publish" not in home  # plain words for hub staff: no command
