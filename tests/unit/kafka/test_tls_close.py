"""A TLS close on the loop every Accord command runs ends within ``TLS_CLOSE_S`` even when
the peer never answers the close_notify.

Two peers: one that answers the request it read with the close and never the close itself,
as a Kafka 4.1 broker does (uvloop then waits its 30 s; the standard library's loop ends on
the answer), and one that says nothing at all (both loops wait 30 s)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from broker.cli import _loop
from broker.config import EventLoop
from broker.crypto import tls_ca, tls_leaf
from broker.kafka import TLS_CLOSE_S, bound_tls_close

#: Well past TLS_CLOSE_S and well short of the 30 s a close waits unbounded.
WITHIN_S = TLS_CLOSE_S + 7.0


class SilentPeer:
    """A TLS server that completes the handshake, reads until the client's close_notify, and
    never answers it: it keeps the connection open until the test ends, after answering what
    it read with the close (``answers``, as Kafka does) or saying nothing."""

    def __init__(self, tmp: Path, *, answers: bool = False) -> None:
        self._answers = answers
        ca_cert, ca_key = tls_ca("close test CA", days=1)
        cert, key = tls_leaf(ca_cert, ca_key, "peer", hosts=["127.0.0.1"], days=1)
        (tmp / "cert.pem").write_bytes(cert)
        (tmp / "key.pem").write_bytes(key)
        (tmp / "ca.pem").write_bytes(ca_cert)
        self.ca = tmp / "ca.pem"
        self._server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._done = threading.Event()
        self._held: list[socket.socket] = []
        self.closes_read = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5.0)
            try:
                conn = self._server.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
            except OSError:  # a plain client, gone before any handshake
                raw.close()
                continue
            self._held.append(conn)  # never closed, never unwrapped: no close_notify back
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                continue
            # recv's b'' is the client's close_notify (an EOF without one raises, above):
            # read, and left unanswered.
            self.closes_read += 1
            if self._answers:  # TLS 1.3 lets this side go on writing after the peer's close
                with contextlib.suppress(OSError):
                    conn.sendall(b"the answer to the request read with the close")

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[SilentPeer]:
    server = SilentPeer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def kafka_like(tmp_path: Path) -> Iterator[SilentPeer]:
    server = SilentPeer(tmp_path, answers=True)
    yield server
    server.stop()


class _Watch(asyncio.Protocol):
    """Knows when its connection is gone."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - gone either way
        if not self.lost.done():
            self.lost.set_result(None)


async def _open_then_close(port: int, context: ssl.SSLContext, within: float = WITHIN_S) -> None:
    transport, watch = await asyncio.get_running_loop().create_connection(
        _Watch, "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    transport.write(b"a request the peer reads with the close")
    transport.close()
    try:
        await asyncio.wait_for(watch.lost, within)
    finally:
        transport.abort()  # a close still waiting when the loop ends would leak its socket


@pytest.mark.parametrize("kind", [EventLoop.UVLOOP, EventLoop.ASYNCIO])
def test_a_commands_tls_close_ends_though_the_peer_never_answers_it(
    peer: SilentPeer, kind: EventLoop
) -> None:
    _loop.run_on(kind, _open_then_close(peer.port, peer.client_context()))
    assert peer.closes_read == 1  # the peer did read the close and left it unanswered


def test_a_commands_tls_close_ends_though_kafka_answers_only_the_request(
    kafka_like: SilentPeer,
) -> None:
    _loop.run_on(EventLoop.UVLOOP, _open_then_close(kafka_like.port, kafka_like.client_context()))
    assert kafka_like.closes_read == 1


async def _closes_within_the_bound(port: int, context: ssl.SSLContext) -> bool:
    try:
        await _open_then_close(port, context, within=TLS_CLOSE_S + 2.0)
    except TimeoutError:
        return False
    return True


def test_without_the_bound_uvloop_waits_for_kafkas_close_notify(kafka_like: SilentPeer) -> None:
    """The tests above pass because of the bound, not because the peer lets go."""
    closed = uvloop.run(_closes_within_the_bound(kafka_like.port, kafka_like.client_context()))
    assert closed is False


def test_without_the_bound_a_silent_peer_holds_asyncios_close(peer: SilentPeer) -> None:
    closed = asyncio.run(_closes_within_the_bound(peer.port, peer.client_context()))
    assert closed is False


async def _plain_connection_and_explicit_wait(port: int, context: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    # A plain connection passes no TLS wait (asyncio refuses one without ssl).
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    transport.abort()
    # A caller's own wait is kept: a minute, so this close is still waiting past TLS_CLOSE_S.
    transport, watch = await loop.create_connection(
        _Watch, "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1",
        ssl_shutdown_timeout=60.0,
    )  # fmt: skip
    transport.close()
    await asyncio.wait([watch.lost], timeout=TLS_CLOSE_S + 2.0)
    assert not watch.lost.done()
    transport.abort()


def test_plain_connections_and_a_callers_own_wait_are_left_alone(peer: SilentPeer) -> None:
    async def main() -> None:
        bound_tls_close(asyncio.get_running_loop())
        await _plain_connection_and_explicit_wait(peer.port, peer.client_context())

    asyncio.run(main())
