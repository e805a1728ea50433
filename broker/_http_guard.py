"""What each of Accord's HTTP servers (a gateway, the console, a desk) allows a connection,
so that whoever reaches its port cannot starve it of connections or file descriptors.

uvicorn bounds none of this itself: its keep-alive timer waits only for a first byte, so a
client that sends half a request, or a body a byte every few seconds, holds a connection for
ever, and nothing caps how many it holds. Here, uvicorn's h11 protocol, subclassed:

- a whole request (headers and body) must arrive within ``request_deadline_seconds`` of the
  connection's start or of the end of the previous answer on it, however its bytes trickle;
  then it is answered 408 if nothing of an answer was sent yet, and closed;
- past ``max_connections`` open at once (lowered at the start to fit under the process's
  open-file limit), a new connection is closed at once, before it is read or, with TLS,
  before its handshake starts;
- an answer the client does not read is dropped: while any of it is buffered past the
  socket, at least 64 KiB of it (or all that is left) must leave within each
  ``write_stall_seconds``, however big the page, else the connection is aborted (a close
  would wait for the buffer to drain, for ever);
- a connection is counted from the moment it is accepted, its TLS handshake included, which
  must end within ``TLS_HANDSHAKE_SECONDS`` (asyncio's default is 60 s); one whose handshake
  fails frees its place at once (the TLS layer is made here, ``_GuardedTLS``, to see it);
- ``accept()`` failing for want of descriptors (EMFILE) is one warning line, not asyncio's
  traceback; asyncio retries the accept a second later by itself. Accord's servers run on
  the standard library's loop (``broker.cli._loop.run``), whose words these are; uvloop
  accepts and closes such a connection itself, unlogged.

Each is counted (``accord_http_connections_closed_total{reason}``, when the server has a
registry) and logged at most once per ``LOG_EVERY`` seconds, with how many it stands for:
never an address or anything the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import ssl
import time
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, Protocol

import h11
import structlog
from prometheus_client import CollectorRegistry, Counter
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BACKLOG", "RESERVED_FDS", "TLS_HANDSHAKE_SECONDS", "connection_cap", "guarded_http"]

log = structlog.get_logger("accord.http")

# Accepted at once per wake-up (asyncio accepts up to the listen backlog in one go, before
# any is seen here): small, so a flood's burst stays near the cap.
BACKLOG = 128
# Descriptors kept for what is not an HTTP client: Kafka's and the database's connections,
# the ops server's, keystore and log files.
RESERVED_FDS = 256
LOG_EVERY = 10.0
# A TLS handshake's bound: a browser's takes milliseconds; a connection that sends nothing
# holds a descriptor until then.
TLS_HANDSHAKE_SECONDS = 10.0
# What must leave per write_stall_seconds for an answer still being read (asyncio's
# high-water mark): about 2 KiB/s at the default 30 s.
_PROGRESS = 64 * 1024
_WAITING = (h11.IDLE, h11.SEND_BODY)  # the client's side: its request not all here yet
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# asyncio's own words when accept() fails so (selector_events._accept_connection).
ACCEPT_FAILED = "socket.accept() out of system resource"
_TOO_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 24\r\n\r\nthe request was too slow"
)


class ClientLimits(Protocol):
    """The settings read (``broker.config``'s section of each server has them)."""

    @property
    def request_deadline_seconds(self) -> float: ...

    @property
    def max_connections(self) -> int: ...

    @property
    def write_stall_seconds(self) -> float: ...


class _Every:
    """One log line per ``LOG_EVERY`` seconds at most for an event a flood repeats; each
    says how many times it happened since the last (``count``)."""

    def __init__(self, event: str, level: str, clock: Callable[[], float]) -> None:
        self.event, self.level, self.clock = event, level, clock
        self.pending = 0
        self.last: float | None = None

    def __call__(self, **fields: Any) -> None:
        self.pending += 1
        now = self.clock()
        if self.last is None or now - self.last >= LOG_EVERY:
            getattr(log, self.level)(self.event, count=self.pending, **fields)
            self.pending, self.last = 0, now


class _Limits:
    """One server's limits and counts, shared by its connections."""

    def __init__(
        self,
        deadline: float,
        cap: int,
        stall: float,
        registry: CollectorRegistry | None,
        clock: Callable[[], float],
    ) -> None:
        self.deadline, self.cap, self.stall, self.open = deadline, cap, stall, 0
        self.closed: Counter | None = None
        if registry is not None:
            self.closed = Counter(
                "accord_http_connections_closed",
                "HTTP connections the server closed itself: a request not all arrived within "
                "the deadline (deadline), a connection past the cap (over_limit), or an "
                "answer the client did not read (write_stalled).",
                ["reason"],
                registry=registry,
            )
            # Present from the start, so that rates work.
            for reason in ("deadline", "over_limit", "write_stalled"):
                self.closed.labels(reason=reason)
        self.too_slow = _Every("http_request_too_slow", "info", clock)
        self.over = _Every("http_connections_over_limit", "warning", clock)
        self.stalled = _Every("http_answer_not_read", "info", clock)

    def count(self, reason: str) -> None:
        if self.closed is not None:
            self.closed.labels(reason=reason).inc()


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline per request, a bound on an unread answer and
    a cap on connections."""

    limits: _Limits  # set on the subclass ``guarded_http`` makes for one server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None
        self._unsent = 0  # the transport's unsent bytes when the stall timer last started
        self._paused = False
        _quiet_accept_failures(self.loop)
        # Made per accepted socket, before a TLS handshake (connection_made comes after it):
        # counted now, so that handshakes never finished hold no descriptors past the cap.
        # One over the cap is aborted before its handshake starts (_GuardedTLS) or, without
        # TLS, as soon as it is made. Released when the connection is lost, or its handshake's
        # transport is (_GuardedTLS: asyncio tells the app protocol nothing of a handshake
        # that failed), or, on a loop whose create_server is not ours, once the handshake's
        # time is up.
        self._counted = self._over = self._made = False
        self._admit()
        self._unmade: asyncio.TimerHandle | None = self.loop.call_later(
            TLS_HANDSHAKE_SECONDS + 1, self._never_made
        )

    def _admit(self) -> None:
        limits = self.limits
        self._over = limits.open >= limits.cap
        if not self._over:
            limits.open += 1
            self._counted = True

    def _never_made(self) -> None:
        self._unmade = None
        if self._counted:
            self._counted = False
            self.limits.open -= 1

    def _handshake_lost(self) -> None:
        """Its TLS handshake's transport is gone, the handshake done or not."""
        if not self._made:
            if self._unmade is not None:
                self._unmade.cancel()
            self._never_made()

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]  # before anything is read or sent
        self.limits.count("over_limit")
        self.limits.over(limit=self.limits.cap)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._made = True
        if self._unmade is not None:
            self._unmade.cancel()
            self._unmade = None
        elif not self._counted and not self._over:
            self._admit()  # a handshake longer than ours (asyncio's own 60 s): counted again
        if self._over:
            self.transport = transport
            self._refuse(transport)  # its descriptor is freed now
            return
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._counted:
            return  # refused over the cap: uvicorn never saw it
        self._counted = False
        self.limits.open -= 1
        self._stop_deadline()
        self._stop_stall()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in _WAITING:
            self._stop_deadline()  # all of it arrived: the app's time is not the client's

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # What is left of the answer must leave in time, or a client that never reads holds
        # the connection: asyncio's close waits for the buffer to drain.
        self._watch_writes(restart=True)
        # The next request's clock starts now; one answered before its body all arrived (a
        # 413, a 401) keeps the clock it had.
        if not self.transport.is_closing() and self.conn.their_state in _WAITING:
            self._start_deadline()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._paused = True
        self._watch_writes(restart=True)  # each high-water mark's worth, within the time

    def resume_writing(self) -> None:
        super().resume_writing()
        self._paused = False
        self._watch_writes(restart=True)

    def _start_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.deadline, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _watch_writes(self, *, restart: bool) -> None:
        if not self._paused and self.transport.get_write_buffer_size() == 0:
            self._stop_stall()
        elif restart or self._stall is None:
            self._stop_stall()
            self._unsent = self.transport.get_write_buffer_size()
            self._stall = self.loop.call_later(self.limits.stall, self._not_read)

    def _stop_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _not_read(self) -> None:
        self._stall = None
        unsent = self.transport.get_write_buffer_size()
        if not self._paused and unsent == 0:
            return
        # A page goes out in one write, and the timer restarts only at a pause or resume:
        # a reader that is reading, however big the page, has its time again.
        if self._unsent - unsent >= _PROGRESS:
            self._unsent = unsent
            self._stall = self.loop.call_later(self.limits.stall, self._not_read)
            return
        self.transport.abort()  # a close would wait for the client to read
        self.limits.count("write_stalled")
        self.limits.stalled(write_stall_seconds=self.limits.stall)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _WAITING:
            return
        phase = "headers" if self.conn.their_state is h11.IDLE else "body"
        self.limits.count("deadline")
        self.limits.too_slow(phase=phase, deadline_seconds=self.limits.deadline)
        if self._paused or self.transport.get_write_buffer_size() > 0:
            self.transport.abort()  # it does not read what it was sent: no 408 either
            return
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # nothing of an answer sent
            self.transport.write(_TOO_SLOW)
        self.transport.close()  # the app, if waiting for the body, is told the client left
        self._watch_writes(restart=False)  # the 408 itself, if it is not read


def connection_cap(wanted: int, *, nofile: int | None = None) -> int:
    """``wanted``, lowered to leave ``RESERVED_FDS`` and a ``BACKLOG``'s burst free under the
    process's open-file limit (``nofile``: ``ulimit -n``'s, by default); said once if so."""
    if nofile is None:
        nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile == resource.RLIM_INFINITY:
            return wanted
    room = max(nofile - RESERVED_FDS - BACKLOG, 16)
    if wanted <= room:
        return wanted
    log.warning(
        "http_connection_cap_lowered", max_connections=wanted, cap=room, open_file_limit=nofile,
        why="raise the open-file limit (ulimit -n, LimitNOFILE=) for more connections",
    )  # fmt: skip
    return room


def guarded_http(
    cfg: ClientLimits,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """uvicorn.Config's arguments for one server held to ``cfg``'s limits (its closes counted
    on ``registry``, if given): a protocol class of its own, and a small backlog."""
    limits = _Limits(cfg.request_deadline_seconds, connection_cap(cfg.max_connections),
                     cfg.write_stall_seconds, registry, clock)  # fmt: skip
    protocol = type("GuardedH11Protocol", (_GuardedH11,), {"limits": limits})
    # Accord's servers make theirs on the loop that will serve them (broker.cli._loop.run);
    # made with no loop running, its first connection quiets accept() but the TLS handshake
    # keeps asyncio's 60 s.
    with contextlib.suppress(RuntimeError):
        loop = asyncio.get_running_loop()
        _quiet_accept_failures(loop)  # before a first connection too
        _bound_tls_handshakes(loop)
    # ws="none": a WebSocket upgrade would hand the socket to a protocol that is not this
    # one, and its count would never be released (no page of Accord's uses WebSockets).
    return {"http": protocol, "backlog": BACKLOG, "ws": "none"}


def _bound_tls_handshakes(loop: asyncio.AbstractEventLoop) -> None:
    """``loop``'s TLS servers give a handshake ``TLS_HANDSHAKE_SECONDS``, unless their caller
    names a time itself: uvicorn passes none to ``create_server``, and has no setting."""
    create_server = loop.create_server
    if getattr(create_server, "accord_handshake_bound", False):
        return

    async def bounded(protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        sslcontext = kwargs.get("ssl")
        if sslcontext and kwargs.get("ssl_handshake_timeout") is None:
            kwargs["ssl_handshake_timeout"] = TLS_HANDSHAKE_SECONDS
        if isinstance(sslcontext, ssl.SSLContext):
            # The TLS layer made here, as the loop would (start_tls does the same), so that
            # a guarded connection's start and end are seen, its handshake's included.
            tls = {
                "ssl_handshake_timeout": kwargs.pop("ssl_handshake_timeout"),
                "ssl_shutdown_timeout": kwargs.pop("ssl_shutdown_timeout", None),
            }
            del kwargs["ssl"]
            app_factory = protocol_factory

            def protocol_factory() -> sslproto.SSLProtocol:
                app = app_factory()
                layer = _GuardedTLS if isinstance(app, _GuardedH11) else sslproto.SSLProtocol
                # No waiter: the loop's own awaits the handshake only to close on failure.
                return layer(loop, app, sslcontext, None, server_side=True, **tls)  # type: ignore[arg-type]

        return await create_server(protocol_factory, *args, **kwargs)

    bounded.accord_handshake_bound = True  # type: ignore[attr-defined]
    # On this loop only, as broker.kafka.bound_tls_close does for its connections.
    loop.create_server = bounded  # type: ignore[method-assign]


class _GuardedTLS(sslproto.SSLProtocol):
    """asyncio's TLS layer for one accepted connection of a guarded server: one over the cap
    is aborted before its handshake (a silent one would hold its descriptor for the whole
    handshake time), and its app protocol is told when the connection ends, the handshake
    done or not (a refused certificate, plain HTTP to the TLS port, a connect-and-close:
    asyncio tells it nothing, and its place would be held for the handshake time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: _GuardedH11, *args: Any,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(loop, app, *args, **kwargs)
        self._guarded = app

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guarded._over:
            self._guarded._refuse(transport)
            return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._guarded._handshake_lost()


_accept_failed = _Every("http_accept_failed", "warning", time.monotonic)


def _quiet_accept_failures(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports ``accept()`` failing for want of descriptors through the loop's
    exception handler, whose default logs a traceback per failure: here, one line now and
    then. Every other report goes where it went."""
    previous = loop.get_exception_handler()
    if getattr(previous, "accord_accept_quiet", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_FDS
            and str(context.get("message", "")).startswith(ACCEPT_FAILED)
        ):
            _accept_failed(
                error=errno.errorcode.get(exc.errno or 0, "?"),
                why="the process is out of file descriptors: new connections wait (asyncio "
                "retries each second); lower max_connections or raise the open-file limit",
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.accord_accept_quiet = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
