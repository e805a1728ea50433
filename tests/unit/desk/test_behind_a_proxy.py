"""A desk behind a reverse proxy: X-Forwarded-For names the client to the sign-in throttle
only on a connection from the proxies named (``ACCORD_DESK__TRUSTED_PROXIES``), and hops
without them named are refused at start, in one line, for the desk as for the console."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from broker.config import ConsoleSettings, DeskSettings
from broker.desk import DeskDeps, create_desk_app
from tests.unit.audit.conftest import Run
from tests.unit.desk.conftest import PASSWORD, USER, csrf_of

PROXY = ("10.42.0.17", 443)  # the ingress controller, as the pod sees it
GUESSER = ("203.0.113.9", 50000)  # one who reaches the desk's port past it
USER_AT = "192.0.2.44"


def _sign_in(client: TestClient, forwarded_for: str, name: str, password: str) -> int:
    client.headers["x-forwarded-for"] = forwarded_for
    token = csrf_of(client.get("/login").text)
    form = {"username": name, "password": password, "csrf": token}
    return client.post("/login", data=form, follow_redirects=False).status_code


@pytest.mark.parametrize(("peer", "believed"), [(PROXY, True), (GUESSER, False)])
def test_x_forwarded_for_moves_the_throttles_address_only_from_a_trusted_proxy(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
    peer: tuple[str, int],
    believed: bool,
) -> None:
    """Ten failures, each naming a new address: from the proxy ten clients, each with budget
    left; from a guesser past it, its own address ten times, so its right password is
    refused too. The user's own budget, through the proxy, is untouched either way."""
    _, deps = make_client()
    settings = DeskSettings(forwarded_hops=1, trusted_proxies="10.42.0.0/16")
    app = create_desk_app(dataclasses.replace(deps, settings=settings))

    def served(at: tuple[str, int]) -> TestClient:
        return TestClient(app, base_url="https://127.0.0.1:8766", client=at)  # Secure cookies

    for i in range(10):
        assert _sign_in(served(peer), f"198.51.100.{i}", f"guess{i}", "wrong") == 401
    expected = 303 if believed else 401
    assert _sign_in(served(peer), "198.51.100.99", USER, PASSWORD) == expected
    assert _sign_in(served(PROXY), USER_AT, USER, PASSWORD) == 303


@pytest.mark.parametrize("model", [DeskSettings, ConsoleSettings])
def test_forwarded_hops_without_trusted_proxies_is_refused(
    model: type[DeskSettings | ConsoleSettings],
) -> None:
    with pytest.raises(ValidationError, match="empty while FORWARDED_HOPS is set"):
        model(forwarded_hops=1)
    cfg = model(forwarded_hops=1, trusted_proxies="10.0.0.0/8, fc00::/7")
    assert [str(n) for n in cfg.trusted_proxies or ()] == ["10.0.0.0/8", "fc00::/7"]
    assert model().trusted_proxies == ()


@pytest.mark.parametrize("model", [DeskSettings, ConsoleSettings])
def test_an_ipv4_mapped_range_which_would_match_nobody_is_refused(
    model: type[DeskSettings | ConsoleSettings],
) -> None:
    """A dual-stack socket's IPv4 peer is compared as IPv4, so ``::ffff:10.0.0.0/104``
    would trust no one while looking as if it trusted 10.0.0.0/8."""
    with pytest.raises(ValidationError, match="entry 2 is an IPv4-mapped range"):
        model(forwarded_hops=1, trusted_proxies="192.0.2.7, ::ffff:10.0.0.0/104")
    cfg = model(trusted_proxies="::/0, 2001:db8::10")  # IPv6 beyond the mapped range: taken
    assert len(cfg.trusted_proxies or ()) == 2


@pytest.mark.parametrize(
    ("section", "argv"),
    [("DESK", ["desk", "--as", "cog-tipton", "--port", "0"]),
     ("CONSOLE", ["console", "--port", "0"]),
     # A shared env file: every process reads every section, so the console refuses too.
     ("DESK", ["console", "--port", "0"])],
)  # fmt: skip
def test_an_app_behind_hops_with_no_proxies_named_does_not_start_and_names_the_variable(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, section: str, argv: list[str]
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv(f"ACCORD_{section}__FORWARDED_HOPS", "1")
    code, _, err = run_cli(argv)
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert f"ACCORD_{section}__TRUSTED_PROXIES: empty while FORWARDED_HOPS is set" in err
    assert "Traceback" not in err
