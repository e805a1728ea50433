"""The console answers only to its own host names: a DNS-rebinding page (its own name
resolved to 127.0.0.1) gets a short refusal, no page, no session, no form."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.errors import ConfigError
from tests.unit.console.conftest import OFFICER, PASSWORD, csrf_of


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io"])
def test_another_host_name_is_refused_before_any_page_or_session(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], host: str
) -> None:
    client = make_client()
    with capture_logs() as logs:
        for path in ("/login", "/", "/subjects", "/static/console.css"):
            r = client.get(path, headers={"host": host})
            assert r.status_code == 400
            assert r.text == "This server does not answer to that host name.\n"
            assert "set-cookie" not in r.headers
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
        posted = client.post(
            "/login", headers={"host": host}, data={"username": OFFICER, "password": PASSWORD}
        )
    assert posted.status_code == 400
    assert {e["event"] for e in logs} == {"console_host_refused"}
    assert logs[0]["host"] == host


def test_a_hostile_host_header_is_not_written_to_the_log_as_sent(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client()
    with capture_logs() as logs:
        r = client.get("/login", headers={"host": "x" * 500})
    assert r.status_code == 400
    assert logs == [{"event": "console_host_refused", "host": "unprintable",
                     "log_level": "warning"}]  # fmt: skip


@pytest.mark.parametrize("base", ["http://127.0.0.1:8765", "http://localhost:9000",
                                  "http://[::1]:8765"])  # fmt: skip
def test_on_loopback_an_officer_signs_in_by_any_loopback_name(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], base: str
) -> None:
    client = TestClient(make_client().app, base_url=base)
    token = csrf_of(client.get("/login").text)
    form = {"username": OFFICER, "password": PASSWORD, "csrf": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303


def test_a_listed_name_is_answered_and_others_still_refused(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    app = make_client(host="0.0.0.0", allowed_hosts=["console.example.org"]).app  # noqa: S104
    assert TestClient(app, base_url="https://console.example.org").get("/login").status_code == 200
    assert TestClient(app, base_url="https://evil.example").get("/login").status_code == 400


def test_on_every_address_without_allowed_hosts_the_console_will_not_start(
    make_client: Callable[..., TestClient],
) -> None:
    with pytest.raises(ConfigError, match=r"^ACCORD_CONSOLE__ALLOWED_HOSTS is not set"):
        make_client(host="0.0.0.0")  # noqa: S104  # the setting under test
