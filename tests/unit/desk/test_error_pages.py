"""The desk's error pages drawn for a signed-in person keep the header of every page (who is
signed in, a Sign out that works, the timeout warning), or on a shared computer they look
signed out while the next person could carry on as them; a 404 leaves the flash for the page
it was meant for. A form from an earlier session, or with a wrong token, is answered with the
page the console answers it with: 403, nothing recorded or sent, nothing typed repeated, a
link back to the form's page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import (
    PASSWORD,
    SECRET,
    T0,
    USER,
    Clock,
    FakeAcks,
    FakePublisher,
    csrf_of,
    delivery,
    sign_in,
)
from tests.unit.webauth.pages import (
    sign_out_once_ended,
    signed_in_header,
    signed_out_header,
    stale_form_page,
)

Make = Callable[..., tuple[TestClient, DeskDeps]]
UNKNOWN = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
TYPED = "Mum rang at 9 and asked for help with Ruby"
PARTIES = {"coordinating_team": "sandwell-coord", "hub": "cog-west-bromwich",
           "school": "school-146201"}  # fmt: skip
NOT_FOUND = [
    ("coordinating_team", "/nope/9434765919"),
    ("coordinating_team", f"/record/{UNKNOWN}"),
    ("coordinating_team", "/child/zz"),
    ("coordinating_team", f"/flag/{UNKNOWN}"),
    ("hub", "/nope"),
    ("hub", f"/record/{UNKNOWN}"),
    ("hub", "/child/zz"),
    ("hub", f"/referral/{UNKNOWN}"),
    ("school", "/nope"),
    ("school", f"/record/{UNKNOWN}"),
    ("school", "/child/zz"),
    ("school", f"/notice/{UNKNOWN}"),
]


def _child(store: DeskStore) -> str:
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], T0)
    return child


def _new_session(client: TestClient) -> tuple[str, str]:
    """The token of a session signed out since (a tab's old page), and the current one's."""
    old = sign_in(client)
    assert client.post("/logout", data={"csrf": old}, follow_redirects=False).status_code == 303
    return old, sign_in(client)


@pytest.mark.parametrize(("kind", "path"), NOT_FOUND)
def test_a_signed_in_404_keeps_the_header_and_its_sign_out_signs_out(
    make_client: Make, kind: str, path: str
) -> None:
    client, _ = make_client(kind=kind, party=PARTIES[kind])
    sign_in(client)
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 404
    token = signed_in_header(r.text, USER)
    out = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login?out=1")
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize("path", ["/nope/9434765919", f"/record/{UNKNOWN}", "/child/zz"])
def test_a_404_signed_out_shows_nobody_signed_in(make_client: Make, path: str) -> None:
    client, _ = make_client()
    r = client.get(path, follow_redirects=False)
    if r.status_code == 303:  # a page of the desk's: to sign in, as before
        assert r.headers["location"].startswith("/login")
        return
    assert r.status_code == 404
    signed_out_header(r.text)


def test_a_404_leaves_the_pending_flash_for_the_page_it_was_meant_for(
    make_client: Make, store: DeskStore
) -> None:
    """A decision's 'recorded' is still said on the child's page after the browser's own
    requests (a favicon) or a dead link answered 404 in between."""
    child = _child(store)
    client, _ = make_client()
    token = sign_in(client)
    form = {"csrf": token, "action": "signpost", "reason": "Signposted to the family hub."}
    r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert r.status_code == 303
    for path in ("/favicon.ico", f"/record/{UNKNOWN}", "/child/zz"):
        missing = client.get(path)
        assert missing.status_code == 404
        assert "Decision recorded" not in missing.text
    assert "Decision recorded: signpost." in client.get(r.headers["location"]).text


def test_an_unknown_address_does_not_keep_the_session_alive(
    make_client: Make, clock: Clock
) -> None:
    """It may be the browser's own request, not the person's: the header shows, the idle
    clock is not restarted."""
    client, _ = make_client()
    sign_in(client)
    clock.advance(minutes=10)
    signed_in_header(client.get("/favicon.ico").text, USER)
    clock.advance(minutes=6)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_an_unexpected_error_page_keeps_the_header(make_client: Make, store: DeskStore) -> None:
    made, _ = make_client()
    client = TestClient(made.app, base_url=str(made.base_url), raise_server_exceptions=False)
    sign_in(client)

    def broken(event_id: str) -> Any:
        raise RuntimeError(event_id)

    store.record = broken  # type: ignore[method-assign]
    r = client.get("/record/e1")
    assert r.status_code == 500
    assert "Something went wrong" in r.text
    signed_in_header(r.text, USER)


def _stale_cases() -> list[tuple[str, str, dict[str, str], str]]:
    """(kind, form's address, its fields, the form's page); ``{child}`` is the child's key."""
    return [
        ("coordinating_team", "/child/{child}/decide", {"action": "refer", "reason": TYPED},
         "/child/{child}"),
        ("coordinating_team", "/child/{child}/close-withdrawn", {"flag": "a" * 32},
         "/child/{child}"),
        ("hub", "/referral/r1/outcome", {"outcome": "support_offered", "summary": TYPED},
         "/referral/r1"),
        ("school", "/notice/n1/acknowledge", {}, "/notice/n1"),
        ("coordinating_team", "/records/search", {"reference": TYPED, "nhs_number": "9434765919"},
         "/records"),
        ("hub", "/records/search", {"reference": TYPED}, "/records"),
    ]  # fmt: skip


@pytest.mark.parametrize("token", ["earlier", "missing"])
@pytest.mark.parametrize(("kind", "action", "fields", "back"), _stale_cases())
def test_a_form_from_an_earlier_session_is_the_shared_page_and_nothing_is_done(
    make_client: Make, store: DeskStore, publisher: FakePublisher, acks: FakeAcks,
    kind: str, action: str, fields: dict[str, str], back: str, token: str,
) -> None:  # fmt: skip
    child = _child(store)
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), T0)
    notice = delivery("n1", recipient="school-146201", type="police.domestic_incident")
    store.add_delivery(notice, [], T0)
    client, _ = make_client(kind=kind, party=PARTIES[kind])
    old, _ = _new_session(client)
    posted = {**fields, "csrf": old if token == "earlier" else ""}
    r = client.post(action.format(child=child), data=posted, follow_redirects=False)
    assert r.status_code == 403
    stale_form_page(r.text, back=back.format(child=child), typed=[TYPED, "9434765919"])
    signed_in_header(r.text, USER)  # still signed in, and said so
    assert store.decisions() == []
    assert publisher.events == []
    assert store.encompass_ack("n1") is None
    assert acks.sent == []


def test_a_form_posted_signed_out_still_goes_to_sign_in(
    make_client: Make, store: DeskStore
) -> None:
    child = _child(store)
    client, _ = make_client()
    old, current = _new_session(client)
    client.post("/logout", data={"csrf": current})
    form = {"csrf": old, "action": "refer", "reason": TYPED}
    r = client.post(f"/child/{child}/decide", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/login?next=%2Fchild%2F{child}&lost=1")


def test_sign_out_from_an_earlier_sessions_page_says_you_are_still_signed_in(
    make_client: Make,
) -> None:
    """On a shared computer: the old tab's Sign out is refused, and the page says the person
    is still signed in, with a Sign out that works."""
    client, _ = make_client()
    old, _ = _new_session(client)
    r = client.post("/logout", data={"csrf": old}, follow_redirects=False)
    assert r.status_code == 403
    assert "You are still signed in" in r.text
    token = signed_in_header(r.text, USER)
    assert client.get("/", follow_redirects=False).status_code == 200
    client.post("/logout", data={"csrf": token})
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize("ended", ["signed out in another tab", "idle"])
def test_sign_out_after_the_session_ended_goes_to_sign_in_saying_you_are_signed_out(
    make_client: Make, clock: Clock, ended: str
) -> None:
    """Not a bare *Refused* without a top bar; a sign-in form open in another tab still works."""
    client, _ = make_client()
    sign_in(client)
    old = csrf_of(client.get("/records").text)

    def end() -> object:
        if ended == "idle":
            return clock.advance(minutes=16)
        return client.post("/logout", data={"csrf": old})  # lands on the sign-in page

    sign_out_once_ended(client, old, end, {"username": USER, "password": PASSWORD})
