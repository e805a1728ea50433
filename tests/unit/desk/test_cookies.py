"""Two desks and the console on one host (``127.0.0.1:<port>`` each, as a Compose deployment
publishes them) keep their own sessions and device cookies: a browser keeps cookies by host
name, not by port, so one cookie jar serves them all here, as it would there."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from tests.unit.desk.conftest import PASSWORD, USER, csrf_of, sign_in


def _one_browser(*clients: TestClient) -> None:
    for client in clients[1:]:
        client.cookies.jar = clients[0].cookies.jar  # one jar, as a browser's for 127.0.0.1


def test_signing_in_to_a_second_desk_on_the_same_host_keeps_the_first_signed_in(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    team, _ = make_client("coordinating_team", "sandwell-coord")
    hub, _ = make_client("hub", "tipton-hub")
    hub.base_url = hub.base_url.copy_with(port=8767)
    _one_browser(team, hub)
    sign_in(team)
    sign_in(hub)
    assert team.get("/", follow_redirects=False).status_code == 200
    assert hub.get("/", follow_redirects=False).status_code == 200
    names = {cookie.name for cookie in team.cookies.jar}
    assert names == {
        "accord_desk_sandwell-coord_session", "accord_desk_sandwell-coord_device",
        "accord_desk_tipton-hub_session", "accord_desk_tipton-hub_device",
    }  # fmt: skip


def test_a_session_under_the_old_cookie_name_means_signing_in_again_not_an_error(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    sign_in(client)
    session = client.cookies["accord_desk_sandwell-coord_session"]
    old = TestClient(client.app, base_url="http://127.0.0.1:8766")
    old.cookies.set("accord_desk_session", session)
    old.cookies.set("accord_device", "junk.1.junk")
    r = old.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    token = csrf_of(old.get("/login").text)
    form = {"username": USER, "password": PASSWORD, "csrf": token}
    assert old.post("/login", data=form, follow_redirects=False).status_code == 303


def test_signing_out_deletes_the_desks_own_cookie(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    [deleted] = r.headers.get_list("set-cookie")
    assert deleted.startswith('accord_desk_sandwell-coord_session="";')
    assert client.get("/", follow_redirects=False).status_code == 303


def test_signing_out_says_so_on_the_sign_in_page_and_not_that_a_session_ended(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    """Someone at a shared computer sees that signing out took; no page claims it ended."""
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    page = client.get(r.headers["location"])
    assert "You have signed out." in page.text
    assert "session ended" not in page.text
    assert "You have signed out." not in client.get("/login").text


def test_a_desk_refuses_a_host_name_not_its_own_its_metrics_too(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    for path in ("/login", "/metrics"):
        assert client.get(path, headers={"host": "evil.example"}).status_code == 400
    assert client.get("/metrics").status_code == 200
