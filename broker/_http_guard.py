"""What each of Accord's HTTP servers (a gateway, the console, a desk) allows a connection,
so that whoever reaches its port cannot starve it of connections or file descriptors.

uvicorn bounds none of this itself: its keep-alive timer waits only for a first byte, so a
client that sends half a request, or a body a byte every few seconds, holds a connection for
ever, and nothing caps how many it holds. Here, uvicorn's h11 protocol, subclassed:

- a whole request (headers and body) must arrive within ``request_deadline_seconds`` of the
  connection's start or of the end of the previous answer on it, however its bytes trickle;
  then it is answered 408 if nothing of an answer was sent yet, and closed;
- past ``max_connections`` open at once (lowered at the start to fit under the process's
  open-file limit), a new connection is closed at once, before it is read;
- ``accept()`` failing for want of descriptors (EMFILE) is one warning line, not asyncio's
  traceback; asyncio retries the accept a second later by itself.

Each is counted (``accord_http_connections_closed_total{reason}``, when the server has a
registry) and logged at most once per ``LOG_EVERY`` seconds, with how many it stands for:
never an address or anything the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import time
from collections.abc import Callable
from typing import Any, Protocol

import h11
import structlog
from prometheus_client import CollectorRegistry, Counter
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BACKLOG", "RESERVED_FDS", "connection_cap", "guarded_http"]

log = structlog.get_logger("accord.http")

# Accepted at once per wake-up (asyncio accepts up to the listen backlog in one go, before
# any is seen here): small, so a flood's burst stays near the cap.
BACKLOG = 128
# Descriptors kept for what is not an HTTP client: Kafka's and the database's connections,
# the ops server's, keystore and log files.
RESERVED_FDS = 256
LOG_EVERY = 10.0
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
        registry: CollectorRegistry | None,
        clock: Callable[[], float],
    ) -> None:
        self.deadline, self.cap, self.open = deadline, cap, 0
        self.closed: Counter | None = None
        if registry is not None:
            self.closed = Counter(
                "accord_http_connections_closed",
                "HTTP connections the server closed itself: a request not all arrived within "
                "the deadline (deadline), or a connection past the cap (over_limit).",
                ["reason"],
                registry=registry,
            )
            for reason in ("deadline", "over_limit"):  # present from the start, so rates work
                self.closed.labels(reason=reason)
        self.too_slow = _Every("http_request_too_slow", "info", clock)
        self.over = _Every("http_connections_over_limit", "warning", clock)

    def count(self, reason: str) -> None:
        if self.closed is not None:
            self.closed.labels(reason=reason).inc()


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline per request and a cap on connections."""

    limits: _Limits  # set on the subclass ``guarded_http`` makes for one server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = False
        _quiet_accept_failures(self.loop)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        limits = self.limits
        if limits.open >= limits.cap:
            self.transport = transport
            transport.abort()  # before anything is read: its descriptor is freed now
            limits.count("over_limit")
            limits.over(limit=limits.cap)
            return
        limits.open += 1
        self._counted = True
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._counted:
            return  # refused over the cap: uvicorn never saw it
        self._counted = False
        self.limits.open -= 1
        self._stop_deadline()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in _WAITING:
            self._stop_deadline()  # all of it arrived: the app's time is not the client's

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's clock starts now; one answered before its body all arrived (a
        # 413, a 401) keeps the clock it had.
        if not self.transport.is_closing() and self.conn.their_state in _WAITING:
            self._start_deadline()

    def _start_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.deadline, self._too_slow)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _WAITING:
            return
        phase = "headers" if self.conn.their_state is h11.IDLE else "body"
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # nothing of an answer sent
            self.transport.write(_TOO_SLOW)
        self.transport.close()  # the app, if waiting for the body, is told the client left
        self.limits.count("deadline")
        self.limits.too_slow(phase=phase, deadline_seconds=self.limits.deadline)


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
                     registry, clock)  # fmt: skip
    protocol = type("GuardedH11Protocol", (_GuardedH11,), {"limits": limits})
    # Made outside the loop that will serve (no loop running), its first connection does it.
    with contextlib.suppress(RuntimeError):
        _quiet_accept_failures(asyncio.get_running_loop())  # before a first connection too
    return {"http": protocol, "backlog": BACKLOG}


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
