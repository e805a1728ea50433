"""A desk sends Strict-Transport-Security whenever its browser side is HTTPS (its own TLS,
or a TLS-terminating proxy declared in front), and not over plain HTTP to loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from broker.config import DeskSettings
from broker.desk import DeskDeps, create_desk_app
from broker.webauth import HSTS

HEADER = "strict-transport-security"


@pytest.mark.parametrize(
    "settings",
    [{"tls_terminated_by_proxy": True}, {"tls_cert": "/etc/desk/cert.pem", "tls_key": "/k.pem"}],
)
def test_over_https_every_answer_keeps_the_browser_to_it(
    make_client: Callable[..., tuple[TestClient, DeskDeps]], settings: dict[str, object]
) -> None:
    _, deps = make_client()
    cfg = DeskSettings(**settings)  # type: ignore[arg-type]  # the test's overrides
    app = create_desk_app(dataclasses.replace(deps, settings=cfg, registry=CollectorRegistry()))
    client = TestClient(app, base_url="https://127.0.0.1:8766")
    for path in ("/login", "/", "/no-such-page", "/metrics"):
        assert client.get(path, follow_redirects=False).headers[HEADER] == HSTS, path


def test_plain_http_to_loopback_sends_no_hsts(
    make_client: Callable[..., tuple[TestClient, DeskDeps]],
) -> None:
    client, _ = make_client()
    answer = client.get("/login")
    assert answer.status_code == 200
    assert HEADER not in answer.headers
