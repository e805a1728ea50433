"""The console's error pages drawn for a signed-in officer keep the header of every page (who
is signed in, a Sign out that works, the timeout warning), and a 404 leaves the flash for the
page it was meant for; a form from an earlier session, or with a wrong token, is answered with
the page the desk answers it with: 403, nothing recorded, nothing typed repeated, a link back
to the form's page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.console.conftest import OFFICER, PASSWORD, Clock, IndexingSink, sign_in
from tests.unit.webauth.pages import (
    sign_out_once_ended,
    signed_in_header,
    signed_out_header,
    stale_form_page,
)

TYPED = "Hughes"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nope/9434765919", 404), ("GET", "/favicon.ico", 404),
     ("GET", "/overrides/review", 405), ("POST", "/nope", 404)],
)  # fmt: skip
def test_a_signed_in_error_page_keeps_the_header_and_its_sign_out_signs_out(
    client: TestClient, method: str, path: str, status: int
) -> None:
    token = sign_in(client)
    r = client.request(method, path, data={"csrf": token} if method == "POST" else None)
    assert r.status_code == status
    own = signed_in_header(r.text, OFFICER)
    out = client.post("/logout", data={"csrf": own}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login?out=1")
    assert client.get("/subjects", follow_redirects=False).headers["location"].startswith("/login")


def test_a_404_signed_out_shows_nobody_signed_in(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    signed_out_header(r.text)


def test_a_404_leaves_the_pending_flash_for_the_page_it_was_meant_for(client: TestClient) -> None:
    sign_in(client)
    [session] = client.app.state.console.sessions._sessions.values()  # type: ignore[attr-defined]
    session.flash_success("Review of event e2 to school-1 recorded in the audit log.")
    missing = client.get("/favicon.ico")
    assert missing.status_code == 404
    assert "Review of event e2" not in missing.text
    assert "Review of event e2 to school-1 recorded" in client.get("/subjects").text


def test_an_unknown_address_does_not_keep_the_session_alive(
    client: TestClient, clock: Clock
) -> None:
    sign_in(client)
    clock.advance(minutes=10)
    signed_in_header(client.get("/favicon.ico").text, OFFICER)
    clock.advance(minutes=6)
    assert client.get("/subjects", follow_redirects=False).headers["location"].startswith("/login")


@pytest.mark.parametrize("token", ["earlier", "missing"])
@pytest.mark.parametrize(
    ("action", "fields", "back"),
    [("/overrides/review", {"event_id": "e2", "recipient": "school-1", "finding": "justified",
                            "reference": TYPED}, "/overrides"),
     ("/subjects", {"purpose": "subject_access_request", "given_name": "Amelia",
                    "family_name": TYPED, "dob": "2016-02-11"}, "/subjects"),
     ("/chains/verify", {}, "/chains")],
)  # fmt: skip
def test_a_form_from_an_earlier_session_is_the_shared_page_and_nothing_is_recorded(
    client: TestClient, sink: IndexingSink, action: str, fields: dict[str, str], back: str,
    token: str,
) -> None:  # fmt: skip
    old = sign_in(client)
    client.post("/logout", data={"csrf": old})
    sign_in(client)
    written = len(sink.records)
    r = client.post(action, data={**fields, "csrf": old if token == "earlier" else ""})
    assert r.status_code == 403
    stale_form_page(r.text, back=back, typed=[TYPED, "Amelia"])
    signed_in_header(r.text, OFFICER)
    assert len(sink.records) == written  # no look-up, review or verification on record


def test_a_form_posted_signed_out_still_goes_to_sign_in(client: TestClient) -> None:
    old = sign_in(client)
    client.post("/logout", data={"csrf": old})
    form = {"csrf": old, "given_name": "Amelia", "family_name": TYPED, "dob": "2016-02-11"}
    r = client.post("/subjects", data=form, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fsubjects&lost=1")


@pytest.mark.parametrize("ended", ["signed out in another tab", "idle"])
def test_sign_out_after_the_session_ended_goes_to_sign_in_saying_you_are_signed_out(
    client: TestClient, clock: Clock, ended: str
) -> None:
    """Not a bare *Refused* without a header; a sign-in form open in another tab still works."""
    old = sign_in(client)

    def end() -> object:
        if ended == "idle":
            return clock.advance(minutes=16)
        return client.post("/logout", data={"csrf": old})  # lands on the sign-in page

    sign_out_once_ended(client, old, end, {"username": OFFICER, "password": PASSWORD})
