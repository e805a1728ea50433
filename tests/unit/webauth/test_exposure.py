"""A web app (the console, a desk) listens beyond loopback only over TLS, its own or a
declared TLS-terminating proxy's, as the gateway does; its own TLS is served by uvicorn."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from broker.config import ConsoleSettings, DeskSettings, SignInSettings
from broker.errors import ConfigError
from broker.webauth import check_exposure, listen, plain_http_warning, server_config, tls_applies


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(certificate, key, CA) for 127.0.0.1, as an operator's own PEM files."""
    from broker.crypto import tls_ca, tls_leaf

    ca_cert, ca_key = tls_ca("test desk CA", days=1)
    leaf_cert, leaf_key = tls_leaf(ca_cert, ca_key, "desk", hosts=["127.0.0.1"], days=1)
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.write_bytes(leaf_cert)
    key.write_bytes(leaf_key)
    ca.write_bytes(ca_cert)
    return cert, key, ca


@pytest.mark.parametrize(("model", "app"), [(DeskSettings, "desk"), (ConsoleSettings, "console")])
@pytest.mark.parametrize("host", ["192.0.2.2", "0.0.0.0", "::", "desk.example"])  # noqa: S104
def test_beyond_loopback_without_tls_is_refused_in_one_line_naming_the_settings(
    model: type[SignInSettings], app: str, host: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_exposure(model(host=host, allowed_hosts="desk.example"), app=app)
    said = str(refused.value)
    assert "\n" not in said
    assert "without TLS" in said
    prefix = f"ACCORD_{app.upper()}__"
    for setting in ("TLS_CERT", "TLS_KEY", "TLS_TERMINATED_BY_PROXY=true"):
        assert f"{prefix}{setting}" in said


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_tls_and_is_said_nothing_of(host: str) -> None:
    cfg = DeskSettings(host=host)
    assert check_exposure(cfg, app="desk") is False
    assert plain_http_warning(cfg, app="desk") is None
    assert not tls_applies(cfg)  # plain HTTP to loopback: no HSTS


def test_a_declared_tls_proxy_lets_it_start_with_a_warning_and_hsts() -> None:
    cfg = DeskSettings(host="0.0.0.0", allowed_hosts="desk.example", tls_terminated_by_proxy=True)  # noqa: S104
    assert check_exposure(cfg, app="desk") is False
    warning = plain_http_warning(cfg, app="desk")
    assert warning is not None
    assert warning.startswith("WARNING: plain HTTP")
    assert "ACCORD_DESK__TLS_TERMINATED_BY_PROXY" in warning
    assert "\n" not in warning
    assert tls_applies(cfg)


def test_its_own_tls_files_let_it_start_unwarned(tls_files: tuple[Path, Path, Path]) -> None:
    cert, key, _ = tls_files
    cfg = ConsoleSettings(host="192.0.2.2", tls_cert=cert, tls_key=key)
    assert check_exposure(cfg, app="console") is True
    assert plain_http_warning(cfg, app="console") is None
    assert tls_applies(cfg)


def test_tls_files_are_both_given_and_must_load(
    tmp_path: Path, tls_files: tuple[Path, Path, Path]
) -> None:
    """Said in one line before anything listens, never with the key's content."""
    good_cert, _, _ = tls_files
    cert, key = tmp_path / "bad-cert.pem", tmp_path / "bad-key.pem"
    with pytest.raises(ConfigError, match=r"^set both ACCORD_DESK__TLS_CERT and ACCORD_DESK__"):
        check_exposure(DeskSettings(tls_cert=cert), app="desk")
    cert.write_text("not a certificate")
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret-looking\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"do not load \(not a PEM certificate") as refused:
        check_exposure(DeskSettings(tls_cert=cert, tls_key=key), app="desk")
    assert "secret-looking" not in str(refused.value)
    assert "\n" not in str(refused.value)
    gone = DeskSettings(tls_cert=good_cert, tls_key=tmp_path / "gone.pem")
    with pytest.raises(ConfigError, match=r"do not load \(No such file or directory\)$"):
        check_exposure(gone, app="desk")


async def test_uvicorn_serves_the_apps_own_tls(tls_files: tuple[Path, Path, Path]) -> None:
    """The same ``server_config`` as the console's and a desk's: HTTPS on its port, verified
    against the operator's CA; plain HTTP to it gets no page."""
    import uvicorn

    cert, key, ca = tls_files

    async def hello(_: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    cfg = DeskSettings(tls_cert=cert, tls_key=key)
    server = uvicorn.Server(server_config(Starlette(routes=[Route("/", hello)]), cfg, 0))
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.02)
        trusted = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=trusted) as client:
            answer = await client.get(f"https://127.0.0.1:{port}/")
            assert (answer.status_code, answer.text) == (200, "hello")
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        server.should_exit = True
        await task
        sock.close()
