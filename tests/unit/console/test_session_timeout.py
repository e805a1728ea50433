"""The session-timeout warning's server side: the limits a page gives its script, the script
itself, ``POST /session/keep-alive`` (the idle clock only, never the lifetime, only with the
session's CSRF token, nothing audited), and the looks that must refresh nothing: ``GET
/session/status`` and the sign-in page's."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from tests.unit.console.conftest import Clock, IndexingSink, csrf_of, sign_in

KEEP_ALIVE = "/session/keep-alive"
STATUS = "/session/status"


def _limits(html: str) -> dict[str, str]:
    tag = re.search(r'<script src="/static/session\.js" defer ([^>]*)></script>', html)
    assert tag, "a signed-in page loads the timeout warning"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(1)))


def _signed_in(client: TestClient) -> bool:
    return client.get("/subjects", follow_redirects=False).status_code == 200


def test_keep_alive_starts_the_idle_clock_again_as_a_page_does(
    client: TestClient, clock: Clock
) -> None:
    token = sign_in(client)
    clock.advance(minutes=14)
    r = client.post(KEEP_ALIVE, data={"csrf": token}, follow_redirects=False)
    assert (r.status_code, r.content) == (204, b"")
    clock.advance(minutes=14)  # 28 minutes since the last page, 14 since the keep-alive
    assert _signed_in(client)


def test_a_session_not_kept_alive_ends_when_idle(client: TestClient, clock: Clock) -> None:
    """The control for the test above: the same wait without the keep-alive ends it."""
    sign_in(client)
    clock.advance(minutes=15)
    assert not _signed_in(client)


def test_keep_alive_does_not_extend_the_sessions_lifetime(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], clock: Clock
) -> None:
    client = make_client(session_max_hours=1)
    token = sign_in(client)
    for _ in range(4):  # 56 minutes, never idle for long
        clock.advance(minutes=14)
        assert client.post(KEEP_ALIVE, data={"csrf": token}).status_code == 204
    clock.advance(minutes=4, seconds=1)  # an hour since signing in
    assert client.post(KEEP_ALIVE, data={"csrf": token}).status_code == 401
    assert not _signed_in(client)


@pytest.mark.parametrize("form", [{}, {"csrf": "not-the-token"}])
def test_keep_alive_without_the_sessions_token_is_refused_and_refreshes_nothing(
    client: TestClient, clock: Clock, form: dict[str, str]
) -> None:
    sign_in(client)
    clock.advance(minutes=10)
    r = client.post(KEEP_ALIVE, data=form | {"x": "1"}, follow_redirects=False)
    assert r.status_code == 403
    clock.advance(minutes=5)  # 15 minutes since the last page: the refused post counted not
    assert not _signed_in(client)


def test_keep_alive_without_a_session_is_refused(client: TestClient, clock: Clock) -> None:
    # No cookie at all; the sign-in page's anonymous session with its own token; a session
    # that has already ended.
    assert client.post(KEEP_ALIVE, data={"csrf": "x"}).status_code == 401
    anonymous = csrf_of(client.get("/login").text)
    assert client.post(KEEP_ALIVE, data={"csrf": anonymous}).status_code == 401
    token = sign_in(client)
    clock.advance(minutes=15)
    r = client.post(KEEP_ALIVE, data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 401  # not a redirect to sign in: the script says so itself
    assert not _signed_in(client)


def test_keep_alive_audits_and_logs_nothing(client: TestClient, sink: IndexingSink) -> None:
    token = sign_in(client)
    before = len(sink.records)
    with capture_logs() as logs:
        assert client.post(KEEP_ALIVE, data={"csrf": token}).status_code == 204
    assert len(sink.records) == before
    assert logs == []


def test_a_signed_in_page_gives_its_script_the_servers_limits_and_token(
    client: TestClient, clock: Clock
) -> None:
    token = sign_in(client)
    limits = _limits(client.get("/subjects").text)
    assert limits == {
        "idle-seconds": "900", "idle-left-seconds": "900", "ends-in-seconds": str(8 * 3600),
        "warn-seconds": "120", "csrf": token,
    }  # fmt: skip
    clock.advance(minutes=10)
    limits = _limits(client.get("/subjects").text)
    # The page touched the session: idle afresh; the lifetime runs on.
    assert (limits["idle-left-seconds"], limits["ends-in-seconds"]) == ("900", str(8 * 3600 - 600))


def test_with_a_short_idle_limit_the_warning_comes_at_half_of_it(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(session_idle_minutes=2)
    sign_in(client)
    limits = _limits(client.get("/").text)
    assert (limits["idle-seconds"], limits["warn-seconds"]) == ("120", "60")


def test_a_page_without_a_signed_in_session_loads_no_script(client: TestClient) -> None:
    assert "<script" not in client.get("/login").text


def test_the_script_and_its_stylesheet_are_served_from_the_apps_own_address(
    client: TestClient,
) -> None:
    js = client.get("/static/session.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["x-content-type-options"] == "nosniff"
    assert KEEP_ALIVE in js.text
    assert STATUS in js.text  # asked before warning and before giving up
    assert "data-next" in js.text
    assert "role" in js.text
    assert "alertdialog" in js.text
    assert "data-idle-seconds" in js.text  # the limits come from the page, not the script
    assert "eval(" not in js.text
    assert "innerHTML" not in js.text
    css = client.get("/static/session.css")
    assert (css.status_code, css.headers["content-type"].split(";")[0]) == (200, "text/css")
    assert ".session-timeout" in css.text


def test_a_session_ended_early_leaves_a_banner_not_a_modal_so_typed_text_can_be_copied(
    client: TestClient,
) -> None:
    """Signed out in another tab: the dialog closes (the page is no longer inert) and an
    alert at the top of <main>, focused, says so and links to the sign-in page."""
    js = client.get("/static/session.js").text
    ended = js.split("function ended() {")[1].split("\n  }\n")[0]
    assert "close();" in ended  # the dialog goes, and with it the page's inert
    assert '"role": "alert"' in ended
    assert '"tabindex": "-1"' in ended
    assert "main.insertBefore(banner, main.firstChild)" in ended
    assert "banner.focus()" in ended
    assert '"href": signInPage()' in ended  # a link: reached by Tab, not a modal's button
    assert "You have been signed out" in ended
    assert "What you typed on this page is not saved: copy it now if you need it." in ended
    assert "Sign in again" in ended
    # No "ended" dialog is left: every early end goes to the banner.
    assert 'open("ended"' not in js
    assert js.count("ended();") == 2  # keep-alive refused, status says signed out
    css = client.get("/static/session.css").text
    assert ".session-ended" in css


def test_the_idle_warning_says_nothing_was_sent_or_opened_and_typing_keeps_nothing_alive(
    client: TestClient,
) -> None:
    """Someone typing is not told they did nothing; and typing is not activity, or a shared
    computer's session would never end while anyone typed into it."""
    js = client.get("/static/session.js").text
    assert '"nothing has been sent or opened for " + spoken(' in js
    assert "have not done anything" not in js
    assert "What you have typed on this page is not saved." in js
    # The keep-alive is posted from one place, "Stay signed in", and nothing listens to typing.
    assert js.count('fetch("/session/keep-alive"') == 1
    assert "stayIn();" in js.split("function primary() {")[1].split("\n  }\n")[0]
    for typing in ('"input"', '"keyup"', '"keypress"', '"change"'):
        assert f"addEventListener({typing}" not in js
    assert [line.strip() for line in js.splitlines() if '"keydown"' in line] == [
        'box.addEventListener("keydown", keys);'  # the dialog's own Tab and Escape
    ]


def test_status_says_how_long_the_session_has_and_refreshes_nothing(
    client: TestClient, clock: Clock
) -> None:
    sign_in(client)
    clock.advance(minutes=10)
    r = client.get(STATUS)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "signed_in": True, "idle_left_seconds": 300, "ends_in_seconds": 8 * 3600 - 600,
    }  # fmt: skip
    clock.advance(minutes=4)
    assert client.get(STATUS).json()["idle_left_seconds"] == 60  # the look counted for nothing
    clock.advance(minutes=1)  # 15 minutes since the last page: asking kept nothing alive
    assert client.get(STATUS).json() == {"signed_in": False}
    assert not _signed_in(client)


def test_status_says_only_signed_out_without_a_signed_in_session(
    client: TestClient, clock: Clock
) -> None:
    # No cookie; the sign-in page's anonymous session; a session that ended.
    assert client.get(STATUS).json() == {"signed_in": False}
    client.get("/login")
    assert client.get(STATUS).json() == {"signed_in": False}
    sign_in(client)
    clock.advance(minutes=15)
    r = client.get(STATUS, follow_redirects=False)
    assert (r.status_code, r.content) == (200, b'{"signed_in":false}')


def test_status_audits_and_logs_nothing(client: TestClient, sink: IndexingSink) -> None:
    sign_in(client)
    before = len(sink.records)
    with capture_logs() as logs:
        assert client.get(STATUS).json()["signed_in"] is True
    assert len(sink.records) == before
    assert logs == []


def test_the_sign_in_page_sends_a_signed_in_visitor_back_without_refreshing_the_session(
    client: TestClient, clock: Clock
) -> None:
    """A tab whose countdown ran out while another tab was in use must not, by opening the
    sign-in page, keep the session alive: only the page it returns to counts as use."""
    sign_in(client)
    clock.advance(minutes=10)
    r = client.get("/login?next=%2Fchains", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/chains")
    clock.advance(minutes=5)  # 15 minutes since the last page
    r = client.get("/login?next=%2Fchains", follow_redirects=False)
    assert r.status_code == 200
    assert "Your session ended" in r.text


def test_the_sign_in_page_after_an_idle_end_says_so_once_the_session_is_gone(
    client: TestClient, clock: Clock
) -> None:
    """The status look may find the ended session first (and forget it): the sign-in page
    still says the session ended."""
    sign_in(client)
    clock.advance(minutes=15)
    assert client.get(STATUS).json() == {"signed_in": False}
    assert "Your session ended" in client.get("/login?next=%2Fsubjects").text
