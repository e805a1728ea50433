"""A web app's server (uvicorn, as the console and a desk run it) drops a client that stops
reading its answers, and counts a connection from its acceptance, its TLS handshake included,
which is bounded; it never hands a connection to a WebSocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse

from broker import _http_guard
from broker.config import SignInSettings
from broker.crypto import tls_ca, tls_leaf
from broker.webauth import listen, server_config

HOST = "127.0.0.1"
PAGE = "x" * 15_000  # a page of the desk's, about
BIG = "y" * 1_500_000  # a subject access request's page, say: sent in one write


async def page(scope: Any, receive: Any, send: Any) -> None:
    body = BIG if scope.get("path") == "/big" else PAGE
    await PlainTextResponse(body)(scope, receive, send)


class Served:
    def __init__(self, port: int, registry: CollectorRegistry, tls: ssl.SSLContext | None):
        self.port, self.registry, self.tls = port, registry, tls

    def closed(self, reason: str) -> float:
        value = self.registry.get_sample_value(
            "accord_http_connections_closed_total", {"reason": reason}
        )
        return value or 0.0

    async def normal(self) -> bytes:
        """A whole request and its status line, on a connection of its own."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, self.port, ssl=self.tls), 5
        )
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()


@pytest.fixture
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    params = getattr(request, "param", {})
    # Read as the server starts listening.
    monkeypatch.setattr(_http_guard, "TLS_HANDSHAKE_SECONDS", 0.5)
    tls_files: dict[str, Any] = {}
    client_tls = None
    if params.get("tls"):
        ca_cert, ca_key = tls_ca("slow readers test CA", days=1)
        cert, key = tls_leaf(ca_cert, ca_key, "desk", hosts=[HOST], days=1)
        (tmp_path / "cert.pem").write_bytes(cert)
        (tmp_path / "key.pem").write_bytes(key)
        (tmp_path / "ca.pem").write_bytes(ca_cert)
        tls_files = {"tls_cert": tmp_path / "cert.pem", "tls_key": tmp_path / "key.pem"}
        client_tls = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    cfg = SignInSettings(
        request_deadline_seconds=10, write_stall_seconds=0.5, max_connections=1, **tls_files
    )
    registry = CollectorRegistry()
    sock = listen(HOST, 0)
    if params.get("sndbuf"):  # accepted sockets inherit it: the kernel cannot hide a page
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, params["sndbuf"])
    server = uvicorn.Server(server_config(page, cfg, 0, registry=registry))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.02)
    yield Served(sock.getsockname()[1], registry, client_tls)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


def never_reading(port: int, requests: int) -> socket.socket:
    """A connection that asks for ``requests`` pages at once and reads none of them."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect((HOST, port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * requests)
    return s


async def test_a_client_that_stops_reading_is_dropped_and_its_place_freed(
    served: Served,
) -> None:
    """Pipelined requests whose answers are never read (the only place, max_connections=1)."""
    held = never_reading(served.port, 300)
    try:
        deadline = time.monotonic() + 8
        while served.closed("write_stalled") < 1:
            assert time.monotonic() < deadline, "the stalled connection was never dropped"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)
        assert (await served.normal()).startswith(b"HTTP/1.1 200")
    finally:
        held.close()


def read_slowly(port: int, rate: float) -> int:
    """A whole big page, read steadily at ``rate`` bytes a second; what arrived."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(10)
    with s:
        s.connect((HOST, port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        got, start = 0, time.monotonic()
        with contextlib.suppress(OSError):
            while chunk := s.recv(4096):
                got += len(chunk)
                time.sleep(max(0.0, got / rate - (time.monotonic() - start)))
        return got


@pytest.mark.parametrize("served", [{"sndbuf": 32768}], indirect=True)
async def test_a_slow_but_steady_reader_gets_a_page_that_takes_many_stall_times(
    served: Served,
) -> None:
    """1.5 MB at 500 KB/s takes 3 s, six times write_stall_seconds (0.5 s), but well above
    64 KiB each 0.5 s: it is all sent, not dropped."""
    got = await asyncio.to_thread(read_slowly, served.port, 500_000)
    assert served.closed("write_stalled") == 0
    assert got > len(BIG)


@pytest.mark.parametrize("served", [{"tls": True}], indirect=True)
async def test_a_connection_in_its_tls_handshake_is_counted_and_bounded(
    served: Served,
) -> None:
    """A silent TCP connection takes the only place until its handshake's time (0.5 s) is
    up."""
    silent = socket.create_connection((HOST, served.port))
    try:
        await asyncio.sleep(0.2)
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            assert not (await served.normal()).startswith(b"HTTP/1.1 200")
        assert served.closed("over_limit") == 1
        await asyncio.sleep(1.8)  # its handshake's time and a second more: its place is free
        assert (await served.normal()).startswith(b"HTTP/1.1 200")
    finally:
        silent.close()


@pytest.mark.parametrize("served", [{"tls": True}], indirect=True)
async def test_failed_tls_handshakes_free_their_place_at_once(served: Served) -> None:
    """Plain HTTP to the TLS port, a client refusing the certificate, a connect-and-close:
    none holds the only place for the handshake's time (0.5 s)."""
    for _ in range(2):
        with socket.create_connection((HOST, served.port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    socket.create_connection((HOST, served.port)).close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):  # trusts another CA
        await asyncio.wait_for(asyncio.open_connection(HOST, served.port, ssl=True), 5)
    await asyncio.sleep(0.1)
    assert (await served.normal()).startswith(b"HTTP/1.1 200")


def closed_after(s: socket.socket) -> float:
    """Seconds until the server closes ``s``, which sends nothing."""
    start = time.monotonic()
    s.settimeout(5)
    with contextlib.suppress(ConnectionError), s:
        assert s.recv(1) == b""
    return time.monotonic() - start


@pytest.mark.parametrize("served", [{"tls": True}], indirect=True)
async def test_a_silent_tls_handshake_is_closed_within_its_time(served: Served) -> None:
    """0.5 s here (asyncio's own would be 60 s)."""
    silent = socket.create_connection((HOST, served.port))
    assert await asyncio.to_thread(closed_after, silent) < 1.5


@pytest.mark.parametrize("served", [{"tls": True}], indirect=True)
async def test_a_connection_over_the_cap_is_closed_before_its_handshake(
    served: Served,
) -> None:
    """Not when its handshake's time (0.5 s) is up: it holds no descriptor meanwhile."""
    holder = socket.create_connection((HOST, served.port))  # the only place
    try:
        await asyncio.sleep(0.1)
        over = [socket.create_connection((HOST, served.port)) for _ in range(5)]
        took = await asyncio.gather(*(asyncio.to_thread(closed_after, s) for s in over))
        assert max(took) < 0.3
        assert served.closed("over_limit") == 5
    finally:
        holder.close()


def test_no_websocket_protocol_can_take_a_connection_over() -> None:
    """Its count would never be released: an upgrade is served as plain HTTP."""
    config = server_config(page, SignInSettings(), 0)
    assert config.ws == "none"
    config.load()
    assert config.ws_protocol_class is None


def test_the_web_servers_run_on_the_standard_library_loop() -> None:
    """Its accept() out of descriptors is what _http_guard quiets (uvloop's is not): a
    gateway, the console and a desk are run by broker.cli._loop.run, not run_on (uvloop)."""
    from broker.cli import _console, _desk, _gateway, _loop

    for module in (_gateway, _console, _desk):
        source = inspect.getsource(module)
        assert "from broker.cli._loop import run\n" in source
        assert "run_on" not in source

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert _loop.run(which()).startswith("asyncio.")
