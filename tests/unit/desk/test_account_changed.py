"""A session whose account an administrator reset or removed ends at its next request, and the
sign-in page says so: not "idle, or the desk restarted", which neither was."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from broker.webauth import UserFile
from tests.unit.desk.conftest import USER, sign_in

IDLE_OR_RESTART = "idle for 15 minutes, or the desk restarted"


def _bounced(client: TestClient) -> str:
    """The sign-in page a signed-in page's next request is sent to."""
    r = client.get("/records", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Frecords")
    return client.get(r.headers["location"]).text


def test_a_reset_account_is_said_to_have_been_changed_by_the_administrator(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    client, _ = make_client()
    sign_in(client)
    users.add(USER, "another long synthetic passphrase", replace=True)  # add-user --reset
    page = _bounced(client)
    assert "Your session ended: your desk administrator changed your account" in page
    assert IDLE_OR_RESTART not in page
    assert "You have signed out" not in page


def test_a_removed_account_is_said_to_have_been_removed_by_the_administrator(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    client, _ = make_client()
    sign_in(client)
    users.remove(USER)  # remove-user
    page = _bounced(client)
    assert "Your session ended: your desk administrator removed your account" in page
    assert IDLE_OR_RESTART not in page


def test_the_reason_is_said_once_and_a_session_timeout_poll_finding_it_first_keeps_it(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], users: UserFile
) -> None:
    """The tab's countdown script may be the request that finds the session ended; the page it
    then goes to says why all the same. After that the browser holds a sign-in form's cookie."""
    client, _ = make_client()
    sign_in(client)
    users.remove(USER)
    assert client.get("/session/status").json() == {"signed_in": False}
    assert "removed your account" in client.get("/login").text
    assert "Your session ended" not in client.get("/login").text
