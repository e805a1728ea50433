"""A web app's server (uvicorn, as the console and a desk run it) closes a request that does
not arrive within its deadline, and a connection past its cap, while others are served; an
``accept()`` out of descriptors is one line, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from structlog.testing import capture_logs
from uvicorn.protocols.http.h11_impl import H11Protocol

from broker._http_guard import ACCEPT_FAILED, connection_cap, guarded_http
from broker.config import SignInSettings
from broker.webauth import listen, server_config

HOST = "127.0.0.1"


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = await Request(scope, receive).body()  # the whole body, as the apps' forms are read
    await PlainTextResponse(f"got {len(body)}")(scope, receive, send)


class Served:
    def __init__(self, server: uvicorn.Server, port: int, registry: CollectorRegistry) -> None:
        self.server, self.port, self.registry = server, port, registry

    async def ask(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """One whole request on an open connection, and its answer's status line."""
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            pass
        await asyncio.wait_for(reader.readexactly(5), 5)  # "got 0"
        return status

    async def normal(self) -> bytes:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            return await self.ask(reader, writer)
        finally:
            writer.close()

    def closed(self, reason: str) -> float:
        value = self.registry.get_sample_value(
            "accord_http_connections_closed_total", {"reason": reason}
        )
        return value or 0.0


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    limits = getattr(request, "param", {})
    cfg = SignInSettings(
        request_deadline_seconds=limits.get("deadline", 0.6),
        max_connections=limits.get("cap", 1000),
    )
    registry = CollectorRegistry()
    sock = listen(HOST, 0)
    server = uvicorn.Server(server_config(echo, cfg, 0, registry=registry))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.02)
    yield Served(server, sock.getsockname()[1], registry)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    sock.close()


async def trickle(writer: asyncio.StreamWriter, head: bytes, drip: bytes, every: float) -> None:
    """Send ``head``, then ``drip`` every ``every`` seconds until the server hangs up."""
    writer.write(head)
    await writer.drain()
    while True:
        await asyncio.sleep(every)
        if writer.is_closing():
            return
        writer.write(drip)
        try:
            await writer.drain()
        except ConnectionError:
            return


async def answer_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closed it


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-a: b\r\n"),  # headers never end
        (  # a body a byte at a time, never all of it
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n",
            b"a",
        ),
    ],
    ids=["slow-headers", "slow-body"],
)
async def test_a_request_trickled_past_the_deadline_is_answered_408_and_closed(
    served: Served, head: bytes, drip: bytes
) -> None:
    """Bytes still arriving do not reset the deadline; a normal request meanwhile is served."""
    reader, writer = await asyncio.open_connection(HOST, served.port)
    start = time.monotonic()
    with capture_logs() as logs:
        dripping = asyncio.create_task(trickle(writer, head, drip, 0.1))
        assert (await served.normal()).startswith(b"HTTP/1.1 200")
        answer = await answer_until_closed(reader)
        elapsed = time.monotonic() - start
        dripping.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert 0.5 < elapsed < 3
    [line] = [e for e in logs if e["event"] == "http_request_too_slow"]
    assert line["log_level"] == "info"
    assert set(line) == {"event", "log_level", "count", "phase", "deadline_seconds"}  # no data
    assert served.closed("deadline") == 1


async def test_the_deadline_starts_again_after_each_answer_on_a_kept_alive_connection(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(HOST, served.port)
    for _ in range(3):  # each within the deadline, together past it
        await asyncio.sleep(0.3)
        assert (await served.ask(reader, writer)).startswith(b"HTTP/1.1 200")
    writer.close()
    assert served.closed("deadline") == 0


@pytest.mark.parametrize("served", [{"cap": 2, "deadline": 10}], indirect=True)
async def test_connections_past_the_cap_are_closed_at_once_while_open_ones_are_served(
    served: Served,
) -> None:
    kept = [await asyncio.open_connection(HOST, served.port) for _ in range(2)]
    await asyncio.sleep(0.1)  # both seen by the server
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection(HOST, served.port)
        with contextlib.suppress(ConnectionResetError):  # closed so, too
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, unanswered
        writer.close()
    for r, w in kept:
        assert (await served.ask(r, w)).startswith(b"HTTP/1.1 200")
    assert served.closed("over_limit") == 1
    [line] = [e for e in logs if e["event"] == "http_connections_over_limit"]
    assert line["limit"] == 2
    for _, w in kept:
        w.close()
    await asyncio.sleep(0.1)
    assert (await served.normal()).startswith(b"HTTP/1.1 200")  # room again


def test_the_cap_is_lowered_to_fit_under_the_open_file_limit() -> None:
    with capture_logs() as logs:
        assert connection_cap(1000, nofile=1024) == 1024 - 256 - 128
        assert connection_cap(100, nofile=1024) == 100
    assert [e["event"] for e in logs] == ["http_connection_cap_lowered"]


async def test_accept_out_of_descriptors_is_one_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    guarded_http(SignInSettings())  # installs the loop's handler
    handler = loop.get_exception_handler()
    assert handler is not None
    context = {"message": ACCEPT_FAILED, "exception": OSError(errno.EMFILE, "Too many open files")}
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        handler(loop, context)
    assert [e["event"] for e in logs] == ["http_accept_failed"]
    assert logs[0]["error"] == "EMFILE"
    assert not [r for r in caplog.records if r.name == "asyncio"]
    with caplog.at_level(logging.ERROR, logger="asyncio"):  # anything else: as before
        handler(loop, {"message": "something else"})
    assert [r.name for r in caplog.records] == ["asyncio"]


def test_the_asyncio_and_uvicorn_behaviour_relied_on_is_still_there() -> None:
    """An upgrade that changes any of these must fail here, not in production."""
    from asyncio import selector_events

    # asyncio reports an accept() out of descriptors in these words, and retries it itself.
    assert ACCEPT_FAILED in inspect.getsource(selector_events)
    # uvicorn takes a protocol class as ``http``, and its h11 protocol has the hooks
    # overridden (connection_made arms no timer of its own: an idle connection waits for ever).
    config = uvicorn.Config(echo, **guarded_http(SignInSettings()))
    config.load()
    assert issubclass(config.http_protocol_class, H11Protocol)
    assert config.backlog == 128
    for hook in ("connection_made", "connection_lost", "handle_events", "on_response_complete"):
        assert hook in vars(H11Protocol)
    assert "call_later" not in inspect.getsource(H11Protocol.connection_made)
