"""The console sends Strict-Transport-Security whenever its browser side is HTTPS (its own
TLS, or a TLS-terminating proxy declared in front), and not over plain HTTP to loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.webauth import HSTS

HEADER = "strict-transport-security"


@pytest.mark.usefixtures("indexed")
def test_behind_a_declared_tls_proxy_every_answer_keeps_the_browser_to_https(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(tls_terminated_by_proxy=True)
    for path in ("/login", "/", "/no-such-page"):
        assert client.get(path, follow_redirects=False).headers[HEADER] == HSTS, path


@pytest.mark.usefixtures("indexed")
def test_with_its_own_tls_files_the_console_sends_hsts(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    """Only the settings are read here; the files are loaded by check_exposure at start."""
    client = make_client(tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    assert client.get("/login").headers[HEADER] == HSTS


@pytest.mark.usefixtures("indexed")
def test_plain_http_to_loopback_sends_no_hsts(make_client: Callable[..., TestClient]) -> None:
    """The demo and a developer's console: an HSTS answer would be ignored there anyway, and
    a proxy on loopback that is not declared is not known to serve HTTPS."""
    answer = make_client().get("/login")
    assert answer.status_code == 200
    assert HEADER not in answer.headers
    assert answer.headers["x-frame-options"] == "DENY"  # the other headers as before
