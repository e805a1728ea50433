"""The console shares the desk's sign-in pages: a lapsed session's form says so and returns."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.unit.console.conftest import (
    OFFICER,
    PASSWORD,
    Clock,
    IndexingSink,
    csrf_of,
    sign_in,
)
from tests.unit.webauth.pages import stale_form_page


def test_a_subject_search_after_the_idle_timeout_returns_to_it_after_signing_in(
    make_client: Callable[..., TestClient], clock: Clock
) -> None:
    client = make_client()
    token = sign_in(client)
    clock.advance(minutes=16)
    form = {"csrf": token, "given_name": "Amelia", "family_name": "Hughes"}
    r = client.post("/subjects", data=form, follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Fsubjects&lost=1"
    page = client.get(r.headers["location"])
    assert "Your session ended (idle for 15 minutes, or the console restarted)" in page.text
    assert "was not saved" in page.text
    assert "Amelia" not in page.text
    again = client.post(
        "/login", data={"username": OFFICER, "password": PASSWORD, "csrf": csrf_of(page.text),
                        "next": "/subjects"}, follow_redirects=False,
    )  # fmt: skip
    assert again.headers["location"] == "/subjects"


def test_a_failed_console_sign_in_says_a_code_is_used_once_not_to_wait_minutes(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": OFFICER, "password": "wrong!", "csrf": token})
    assert r.status_code == 401
    assert "A code can be used once: wait for the next one" in r.text
    assert "wait a few minutes" not in r.text


def test_a_form_from_an_earlier_session_says_nothing_was_recorded(
    client: TestClient, sink: IndexingSink
) -> None:
    """Tab A's review form, after signing out and in again in tab B: the current session's
    page says the form is stale and nothing was recorded, never 'sign in first'."""
    old = sign_in(client)
    client.post("/logout", data={"csrf": old})
    sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                               "finding": "justified", "csrf": old})  # fmt: skip
    assert r.status_code == 403
    stale_form_page(r.text, back="/overrides")
    assert "Sign in first" not in r.text
    assert OFFICER in r.text  # the header still shows who is signed in
    assert [r.kind.value for r in sink.records if r.kind.value == "override_reviewed"] == []
