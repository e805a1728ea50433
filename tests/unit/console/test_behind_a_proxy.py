"""The console as uvicorn serves it (``broker.webauth.server_config``): behind a reverse proxy
each officer is their own client to the sign-in throttle, and an unexpected error leaves
nothing for the server to log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from broker.config import ConsoleSettings
from broker.webauth import server_config
from tests.unit.console.conftest import OFFICER, PASSWORD, csrf_of

PROXY = ("10.42.0.17", 443)  # the ingress controller (or Docker's gateway), as the pod sees it


def _served(app: object, trusted: str) -> TestClient:
    config = server_config(app, ConsoleSettings(forwarded_allow_ips=trusted), 8765)  # type: ignore[arg-type]  # an ASGI app
    config.load()
    return TestClient(config.loaded_app, base_url="https://console.example", client=PROXY)


def _sign_in(client: TestClient, forwarded_for: str, name: str, password: str) -> int:
    client.headers["x-forwarded-for"] = forwarded_for
    token = csrf_of(client.get("/login").text)
    form = {"username": name, "password": password, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False).status_code


@pytest.mark.parametrize(("trusted", "officer_gets"), [("*", 303), ("127.0.0.1,::1", 401)])
def test_an_outsiders_failures_behind_the_proxy_cost_only_the_outsider(
    client: TestClient, trusted: str, officer_gets: int
) -> None:
    """Believing the proxy's X-Forwarded-For is what keeps an officer's new browser in."""
    served = _served(client.app, trusted)
    for i in range(10):
        assert _sign_in(served, "203.0.113.9", f"guess{i}", "not the password") == 401
    officer = _served(client.app, trusted)
    assert _sign_in(officer, "192.0.2.44", OFFICER, PASSWORD) == officer_gets


def test_an_unexpected_error_ends_at_the_error_page_not_in_the_servers_log(
    make_client: Callable[..., TestClient],
) -> None:
    """Starlette raises the exception again after the page: nothing must reach uvicorn."""
    app = make_client().app
    assert isinstance(app, FastAPI)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a child's name")

    config = server_config(app, ConsoleSettings(), 8765)
    config.load()
    # raise_server_exceptions: the test client raises whatever the app lets out, as uvicorn
    # would log it ("Exception in ASGI application", the message and traceback).
    served = TestClient(config.loaded_app, base_url="http://127.0.0.1:8765")
    response = served.get("/boom")
    assert response.status_code == 500
    assert "a child" not in response.text
