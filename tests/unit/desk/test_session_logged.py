"""Signing out is logged as signing in is (the user name, nothing more), and a session's end
by the clock, an administrator or a restart once, with why, by the request that finds it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps
from broker.webauth import UserFile
from tests.unit.desk.conftest import PASSWORD, USER, Clock, csrf_of, sign_in

COOKIE = "accord_desk_sandwell-coord_session"


def _ended(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "desk_session_ended"]


def _found(client: TestClient) -> None:
    """What a browser does with an ended session: a page, sent on to sign in, then the
    countdown's question and the sign-in page again."""
    r = client.get("/records", follow_redirects=False)
    assert r.status_code == 303
    client.get(r.headers["location"])
    client.get("/session/status")
    client.get("/login")


def test_signing_out_is_logged_with_the_user_name_only(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    token = sign_in(client)
    with capture_logs() as logs:
        r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
        assert r.headers["location"] == "/login?out=1"
        client.post("/logout", data={"csrf": token})  # signed out already: nothing more
    said = [e for e in logs if e["event"] == "desk_sign_out"]
    assert said == [{"event": "desk_sign_out", "log_level": "info", "user": USER}]
    assert _ended(logs) == []  # signing out is no session ending on its own


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (lambda _users, clock: clock.advance(minutes=16), "idle"),
        (lambda _users, clock: clock.advance(minutes=10), "lifetime"),
        (lambda users, _clock: users.add(USER, "another long synthetic passphrase",
                                         replace=True), "reset"),
        (lambda users, _clock: users.remove(USER), "removed"),
    ],
)  # fmt: skip
def test_a_sessions_end_is_logged_once_with_why_and_whose(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    users: UserFile,
    clock: Clock,
    end: Callable[[UserFile, Clock], object],
    reason: str,
) -> None:
    client, _ = make_client()
    sign_in(client)
    if reason == "lifetime":  # in use all along, till 10 minutes short of its 8 hours
        for _ in range(8 * 6 - 1):
            clock.advance(minutes=10)
            assert client.get("/", follow_redirects=False).status_code == 200
    end(users, clock)
    with capture_logs() as logs:
        _found(client)
    assert _ended(logs) == [
        {"event": "desk_session_ended", "log_level": "info", "user": USER, "reason": reason}
    ]


def test_a_session_a_restart_forgot_is_counted_and_said_as_idle_or_a_restart(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """The new process cannot tell an old session's cookie from a forged one: it notes and
    logs neither, only counts them (one line a minute at most), and the page says why in the
    words it always had for this."""
    before, _ = make_client()
    sign_in(before)
    after, _ = make_client()  # a new process: its sessions are not the old one's
    after.cookies = before.cookies
    with capture_logs() as logs:
        r = after.get("/records", follow_redirects=False)
        said = after.get(r.headers["location"]).text
        after.get("/session/status")
        after.get("/login")
    assert "Your session ended (idle for 15 minutes, or the desk restarted)" in said
    assert _ended(logs) == []
    assert [e for e in logs if e["event"] == "desk_session_cookies_unknown"] == [
        {"event": "desk_session_cookies_unknown", "log_level": "info", "count": 1}
    ]


def test_a_cookie_no_session_could_have_logs_nothing(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    with capture_logs() as logs:
        client.cookies.set("accord_desk_sandwell-coord_session", "not-a-session")
        _found(client)
    assert _ended(logs) == []


def test_the_id_a_password_change_replaced_says_why_and_whose_if_it_comes_back(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """A cookie stolen before the change was logged as a restart's, with no user (r46a 6)."""
    client, _ = make_client()
    sign_in(client)
    old = client.cookies.get(COOKIE)
    new = "a different synthetic passphrase"
    form = {"current_password": PASSWORD, "new_password": new, "new_password_again": new,
            "csrf": csrf_of(client.get("/account/password").text)}  # fmt: skip
    assert client.post("/account/password", data=form, follow_redirects=False).status_code == 303
    thief = TestClient(client.app, base_url=str(client.base_url))
    thief.cookies.set(COOKIE, str(old))
    with capture_logs() as logs:
        r = thief.get("/records", follow_redirects=False)
        said = thief.get(r.headers["location"]).text
    assert "Your session ended: your password was changed" in said
    assert _ended(logs) == [{"event": "desk_session_ended", "log_level": "info", "user": USER,
                             "reason": "password_changed"}]  # fmt: skip
    assert client.get("/", follow_redirects=False).status_code == 200


def test_a_signed_out_cookie_used_again_says_and_logs_signed_out_with_whose_once(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """A copy of a cookie, replayed after Sign out, was logged as a restart's with no user
    and said as 'idle or restarted' (review r46e 3)."""
    client, _ = make_client()
    token = sign_in(client)
    old = client.cookies.get(COOKIE)
    with capture_logs() as logs:
        client.post("/logout", data={"csrf": token})
    assert _ended(logs) == []  # the sign-out is logged as such, below
    assert [e["event"] for e in logs] == ["desk_sign_out"]
    thief = TestClient(client.app, base_url=str(client.base_url))
    thief.cookies.set(COOKIE, str(old))
    with capture_logs() as logs:
        r = thief.get("/records", follow_redirects=False)
        said = thief.get(r.headers["location"]).text
        thief.get("/records", follow_redirects=False)  # again: logged once
    assert "Your session ended: it was signed out" in said
    assert "restarted" not in said
    assert _ended(logs) == [{"event": "desk_session_ended", "log_level": "info", "user": USER,
                             "reason": "signed_out"}]  # fmt: skip
