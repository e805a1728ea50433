"""A session that ends mid-form: the sign-in page says why, says what typed was not saved,
and signing in again returns to the page (never to another site)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from tests.unit.desk.conftest import PASSWORD, USER, Clock, csrf_of, sign_in

CHILD = "c0ffee00c0ffee00c0ffee00c0ffee00"
ENDED = "Your session ended (idle for 15 minutes, or the desk restarted): sign in again."


def next_field(html: str) -> str | None:
    found = re.search(r'name="next" value="([^"]*)"', html)
    return found.group(1) if found else None


def test_a_form_posted_after_the_idle_timeout_returns_to_its_page_after_signing_in(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], clock: Clock
) -> None:
    client, _ = make_client()
    token = sign_in(client)
    clock.advance(minutes=16)
    form = {"csrf": token, "action": "refer", "reason": "a synthetic reason typed in"}
    r = client.post(f"/child/{CHILD}/decide", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=%2Fchild%2F{CHILD}&lost=1"
    page = client.get(r.headers["location"])
    assert ENDED in page.text
    assert "What you typed on that form was not saved" in page.text
    assert "a synthetic reason" not in page.text
    assert next_field(page.text) == f"/child/{CHILD}"
    again = client.post(
        "/login", data={"username": USER, "password": PASSWORD, "csrf": csrf_of(page.text),
                        "next": next_field(page.text)}, follow_redirects=False,
    )  # fmt: skip
    assert again.status_code == 303
    assert again.headers["location"] == f"/child/{CHILD}"


def test_after_a_restart_an_old_sessions_page_says_it_ended_and_returns_there(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    before, _ = make_client()
    sign_in(before)
    after, _ = make_client()  # a new process: its sessions are not the old one's
    after.cookies = before.cookies
    r = after.get("/records?page=2", follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Frecords%3Fpage%3D2"
    page = after.get(r.headers["location"])
    assert ENDED in page.text
    assert "was not saved" not in page.text  # a GET lost nothing
    assert next_field(page.text) == "/records?page=2"


def test_a_first_visit_is_sent_to_sign_in_without_saying_a_session_ended(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    r = client.get("/", follow_redirects=False)
    assert r.headers["location"] == "/login"
    page = client.get("/login")
    assert "session ended" not in page.text
    assert client.get("/login").text.count("session ended") == 0  # nor with its form's cookie


def test_a_post_with_nothing_typed_does_not_say_anything_was_lost(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], clock: Clock
) -> None:
    client, _ = make_client(kind="school", party="school-146201")
    token = sign_in(client)
    clock.advance(minutes=16)
    r = client.post("/notice/n-1/acknowledge", data={"csrf": token}, follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Fnotice%2Fn-1"


def test_a_form_beyond_the_bounds_without_a_session_is_sent_to_sign_in_not_a_500(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """Whether text was lost is asked of the form; one with too many fields is not an error
    of ours: the page still sends the request to sign in."""
    client, _ = make_client()
    data = {f"f{i}": "x" for i in range(40)} | {"reason": "typed"}
    r = client.post("/child/abc/decide", data=data, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\\evil.example", "https://evil.example", "/%2F%2Fevil"]
)
def test_signing_in_never_redirects_to_another_site(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], target: str
) -> None:
    client, _ = make_client()
    page = client.get("/login", params={"next": target})
    assert next_field(page.text) is None
    r = client.post(
        "/login", data={"username": USER, "password": PASSWORD, "csrf": csrf_of(page.text),
                        "next": target}, follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_a_failed_sign_in_does_not_send_anyone_to_wait_and_says_a_code_is_used_once(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    page = client.get("/login", params={"next": "/records"})
    r = client.post(
        "/login", data={"username": USER, "password": "a wrong password!",
                        "csrf": csrf_of(page.text), "next": "/records"},
    )  # fmt: skip
    assert r.status_code == 401
    assert "A code can be used once: wait for the next one" in r.text
    assert "wait a few minutes" not in r.text
    assert next_field(r.text) == "/records"  # a retry still returns there


def test_a_client_over_its_own_budget_is_told_to_wait_and_for_how_long(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    answers = []
    for n in range(11):  # the per-client budget is 10 a window
        token = csrf_of(client.get("/login").text)
        form = {"username": f"someone{n}", "password": "a wrong password!", "csrf": token}
        answers.append(client.post("/login", data=form).text)
    assert "too many failed attempts from this network address" not in answers[9]
    assert "Wait up to 15 minutes" in answers[10]
