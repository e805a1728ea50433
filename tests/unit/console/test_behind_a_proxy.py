"""The console as uvicorn serves it (``broker.webauth.server_config``): behind a reverse proxy
each officer is their own client to the sign-in throttle, without one, or past it, nobody
chooses the address they are counted under (not even from loopback), and an unexpected error
leaves nothing for the server to log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from broker.config import ConsoleSettings
from broker.webauth import server_config
from tests.unit.console.conftest import OFFICER, PASSWORD, csrf_of

PROXY = ("10.42.0.17", 443)  # the ingress controller (or Docker's gateway), as the pod sees it
PROXIES = "10.42.0.0/16"  # ACCORD_CONSOLE__TRUSTED_PROXIES: the pod network the proxy is in
ATTACKER, OFFICER_AT = "203.0.113.9", "192.0.2.44"


def _served(app: object, peer: tuple[str, int] = PROXY) -> TestClient:
    config = server_config(app, ConsoleSettings(), 8765)  # type: ignore[arg-type]  # an ASGI app
    config.load()
    return TestClient(config.loaded_app, base_url="https://console.example", client=peer)


def _sign_in(client: TestClient, forwarded_for: str | None, name: str, password: str) -> int:
    if forwarded_for is not None:
        client.headers["x-forwarded-for"] = forwarded_for
    token = csrf_of(client.get("/login").text)
    form = {"username": name, "password": password, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False).status_code


def _guess_ten_times(client: TestClient, forwarded_for: str) -> None:
    for i in range(10):
        assert _sign_in(client, forwarded_for, f"guess{i}", "not the password") == 401


NAME = ["console.example"]  # the name the proxy passes on, as _served's base URL


@pytest.mark.parametrize(("hops", "officer_gets"), [(1, 303), (None, 401), (0, 401)])
def test_behind_one_proxy_an_outsiders_failures_cost_only_the_outsider(
    make_client: Callable[..., TestClient], hops: int | None, officer_gets: int
) -> None:
    """One hop: the address the proxy appended is the client. Without (none by default),
    every officer is the proxy's one address."""
    settings = {} if hops is None else {"forwarded_hops": hops, "trusted_proxies": PROXIES}
    app = make_client(allowed_hosts=NAME, **settings).app
    _guess_ten_times(_served(app), ATTACKER)
    assert _sign_in(_served(app), OFFICER_AT, OFFICER, PASSWORD) == officer_gets


def test_an_address_a_client_sends_itself_is_not_the_one_counted(
    make_client: Callable[..., TestClient],
) -> None:
    """The proxy appends to what the client sent: a new address per try buys no new budget,
    and naming an officer's address does not spend theirs."""
    app = make_client(forwarded_hops=1, trusted_proxies=PROXIES, allowed_hosts=NAME).app
    for i in range(10):
        spoofed = f"10.9.{i}.1, {ATTACKER}"  # the client's own entry, then the proxy's
        assert _sign_in(_served(app), spoofed, f"guess{i}", "not the password") == 401
    assert _sign_in(_served(app), f"10.9.99.1, {ATTACKER}", OFFICER, PASSWORD) == 401
    assert _sign_in(_served(app), f"{ATTACKER}, {OFFICER_AT}", OFFICER, PASSWORD) == 303


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1"])
def test_from_loopback_without_a_proxy_set_x_forwarded_for_buys_no_new_budget(
    make_client: Callable[..., TestClient], peer: str
) -> None:
    """The reviewer's attack: a console on 127.0.0.1 (a local user, an ssh tunnel, the
    demo), ten wrong passwords spend the client's budget, and the right one is refused; a
    made-up X-Forwarded-For must not make it a new client (it once did from loopback)."""
    app = make_client(allowed_hosts=NAME).app
    for i in range(10):
        client = _served(app, (peer, 50000 + i))
        assert _sign_in(client, f"198.51.100.{i}", f"guess{i}", "not the password") == 401
    assert _sign_in(_served(app, (peer, 50100)), None, OFFICER, PASSWORD) == 401
    assert _sign_in(_served(app, (peer, 50101)), "203.0.113.7", OFFICER, PASSWORD) == 401


def test_a_proxy_on_loopback_is_believed_once_hops_are_set(
    make_client: Callable[..., TestClient],
) -> None:
    app = make_client(forwarded_hops=1, trusted_proxies="127.0.0.1", allowed_hosts=NAME).app
    _guess_ten_times(_served(app, ("127.0.0.1", 50000)), ATTACKER)
    assert _sign_in(_served(app, ("127.0.0.1", 50001)), OFFICER_AT, OFFICER, PASSWORD) == 303


@pytest.mark.parametrize(
    ("peer", "believed"),
    [(PROXY, True), (("::ffff:10.42.0.17", 443), True),  # the proxy, on a dual-stack socket too
     ((ATTACKER, 50000), False), (("10.43.0.9", 50000), False)],  # past it; another pod
)  # fmt: skip
def test_x_forwarded_for_moves_the_throttles_address_only_from_a_trusted_proxy(
    make_client: Callable[..., TestClient], peer: tuple[str, int], believed: bool
) -> None:
    """A guesser who reaches the port past the proxy, naming a new address at each try,
    is still counted under its own: its ten failures spend its budget, and the right
    password from it is refused too, whatever it names; from the proxy each named address
    is a client of its own. Either way, the officer's own budget is untouched."""
    app = make_client(forwarded_hops=1, trusted_proxies=PROXIES, allowed_hosts=NAME).app
    for i in range(10):
        spoofed = f"198.51.100.{i}"
        assert _sign_in(_served(app, peer), spoofed, f"guess{i}", "not the password") == 401
    expected = 303 if believed else 401
    assert _sign_in(_served(app, peer), "198.51.100.99", OFFICER, PASSWORD) == expected
    assert _sign_in(_served(app), OFFICER_AT, OFFICER, PASSWORD) == 303


@pytest.mark.parametrize(
    ("outer", "believed"),
    [("10.42.5.5", True),  # through the load balancer, a trusted proxy too
     (ATTACKER, False)],  # the reviewer's repro: past the balancer, straight to the ingress
)  # fmt: skip
def test_at_two_hops_the_inner_proxys_entry_is_believed_only_for_a_trusted_outer_proxy(
    make_client: Callable[..., TestClient], outer: str, believed: bool
) -> None:
    """Behind a load balancer and the ingress, the entry the ingress appends must itself be
    a trusted proxy's: one who reaches the ingress directly is counted as themself, so ten
    failures each naming a new address to its left spend their own budget, and the right
    password from them is refused too. The officer's own budget is untouched either way."""
    app = make_client(forwarded_hops=2, trusted_proxies=PROXIES, allowed_hosts=NAME).app
    for i in range(10):
        forwarded = f"198.51.100.{i}, {outer}"
        assert _sign_in(_served(app), forwarded, f"guess{i}", "not the password") == 401
    expected = 303 if believed else 401
    assert _sign_in(_served(app), f"198.51.100.99, {outer}", OFFICER, PASSWORD) == expected
    assert _sign_in(_served(app), f"{OFFICER_AT}, 10.42.5.5", OFFICER, PASSWORD) == 303


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


def test_uvicorns_own_forwarded_setting_is_not_read_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator who set FORWARDED_ALLOW_IPS (the docs' advice before) is told what to set."""
    import structlog.testing

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5")
    with structlog.testing.capture_logs() as logs:
        config = server_config(FastAPI(), ConsoleSettings(), 8765)
    assert config.proxy_headers is False
    assert [e["event"] for e in logs] == ["forwarded_allow_ips_ignored"]
    assert "ACCORD_CONSOLE__FORWARDED_HOPS" in logs[0]["why"]
    assert "ACCORD_CONSOLE__TRUSTED_PROXIES" in logs[0]["why"]
