"""What every Accord web app shares at the HTTP edge: headers, form bounds, the listening socket.

Every response carries a Content-Security-Policy that allows scripts from the app's own
address only (one: the session-timeout warning, ``/static/session.js``; nothing inline, no
``eval``), which may call back to that address alone, and no inline style; ``no-store``
caching (pages hold data about children) and no referrer. A POST body is refused before
anything parses it unless it is a small plain form.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from broker.errors import UsageError
from broker.webauth._throttle import address_of

if TYPE_CHECKING:
    import uvicorn
    from prometheus_client import CollectorRegistry
    from starlette.types import ASGIApp, Receive, Scope, Send

    from broker.config import Network, SignInSettings

__all__ = [
    "CSP",
    "MAX_BODY",
    "SECURITY_HEADERS",
    "bad_body",
    "client_host",
    "form_field",
    "listen",
    "loopback",
    "read_form",
    "server_config",
    "url_host",
]

# script-src 'self' without 'unsafe-inline' or 'unsafe-eval': a script injected into a page
# still does not run. connect-src 'self': the warning's "Stay signed in" (a same-origin POST).
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

MAX_BODY = 16 * 1024  # every form here is a few short fields


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bad_body(request: Request) -> Response | None:
    """Refuse a POST body before anything parses it: too big, unsized, or not a plain form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Response("forms only", status_code=415, media_type="text/plain")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return Response("a length is required", status_code=411, media_type="text/plain")
    if int(length) > MAX_BODY:
        return Response("too large", status_code=413, media_type="text/plain")
    return None


async def read_form(request: Request) -> Any:
    """The posted form, within small bounds (the middleware has checked type and size)."""
    return await request.form(max_files=0, max_fields=16, max_part_size=MAX_BODY)


def form_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def listen(host: str, port: int) -> socket.socket:
    """Bind before serving, so a taken port is one clear error (and port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def server_config(
    app: ASGIApp, cfg: SignInSettings, port: int, *, registry: CollectorRegistry | None = None
) -> uvicorn.Config:
    """uvicorn's settings for one of Accord's web apps, the same for the console and a desk:
    held to ``cfg``'s connection limits (:func:`guarded_http`, its closes counted on
    ``registry`` if given).

    uvicorn leaves ``X-Forwarded-For`` alone: :func:`client_host` reads it, by hop count
    (``cfg.forwarded_hops``) from the proxies' addresses (``cfg.trusted_proxies``) only, so
    uvicorn's own ``FORWARDED_ALLOW_IPS`` is not read, and is warned about if set. And
    nothing of an unexpected error's is left for uvicorn to log: the app's own handler has
    logged the exception's type and answered the page, after which Starlette raises it
    again, and uvicorn would print its message and traceback (which can hold what the page
    was showing).
    """
    import uvicorn  # noqa: PLC0415  # slow import, and only a server needs it

    from broker._http_guard import guarded_http  # noqa: PLC0415  # imports uvicorn

    if os.environ.get("FORWARDED_ALLOW_IPS"):
        structlog.get_logger("accord.web").warning(
            "forwarded_allow_ips_ignored",
            why="FORWARDED_ALLOW_IPS is not read: set ACCORD_CONSOLE__FORWARDED_HOPS "
            "(ACCORD_DESK__FORWARDED_HOPS) to the number of proxies in front and "
            "ACCORD_CONSOLE__TRUSTED_PROXIES (ACCORD_DESK__TRUSTED_PROXIES) to their addresses",
        )
    return uvicorn.Config(
        _Contained(app),
        host=cfg.host,
        port=port,
        log_config=None,
        access_log=False,  # our pages log what matters; an access log adds nothing safe
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        **guarded_http(cfg, registry=registry),
        ssl_certfile=cfg.tls_cert,  # its own TLS, if any (broker.webauth.check_exposure)
        ssl_keyfile=cfg.tls_key,
    )


def client_host(request: Request, hops: int, trusted: Sequence[Network]) -> str | None:
    """The address a request came from, for the limits that count by address (the sign-in
    throttle, a gateway's wrong-token limit).

    Each of ``hops`` proxies appends the address it was reached from to X-Forwarded-For, so
    the client is that many entries from the end; whatever a client sends itself stays to
    the left. That is believed only on a connection from ``trusted`` (the proxies' addresses):
    anyone who reaches the port directly could write any address there, a new one at each
    guess. Past the first proxy the same holds of each entry a proxy wrote: walking from the
    right, each of the first ``hops - 1`` must be in ``trusted`` too, else the first that is
    not is the client (as uvicorn's proxy headers): one who reaches the inner proxy directly
    is counted as themself, not as what they wrote to its left. With fewer entries than hops
    (a proxy fewer in front than set, or a caller who reached an inner proxy directly) the
    walk is the same over the entries there are, each written by a trusted proxy: the first
    not trusted, or if all are, the leftmost (as uvicorn), not the peer, which would make
    every user the proxy's one address. From any other peer, and with 0 hops, the
    connection's own address, from loopback too (a peer on loopback may be a local user, an
    ssh tunnel or a DNS-rebinding page, none of them a proxy). No entry at all, or a client
    entry that is no address (``unknown``, which would be one budget shared by all who send
    it): the peer. A hop count the header shows to be wrong (fewer entries than hops, or a
    trusted proxy's entry counted as the client) is warned about once, as a proxy not trusted.
    """
    peer = request.client.host if request.client else None
    if hops <= 0:
        return peer
    entries = [e.strip() for h in request.headers.getlist("x-forwarded-for") for e in h.split(",")]
    entries = [e for e in entries if e]
    if not _among(peer, trusted):
        if entries:
            _warn_once("peer")
        return peer
    if not entries:
        return peer  # a probe or a caller from a trusted range: nothing to believe
    if len(entries) < hops:
        _warn_once("more")
    # The client's entry, then those the inner proxies wrote to its right.
    counted = entries[-min(hops, len(entries)) :]
    client = counted[0]
    for entry in reversed(counted[1:]):
        if not _among(entry, trusted):
            _warn_once("hop")
            client = entry
            break
    else:
        if len(entries) >= hops and _among(client, trusted):
            _warn_once("less")
    return client if address_of(client) is not None else peer


def _among(host: str | None, trusted: Sequence[Network]) -> bool:
    # The address itself, not its /64 (client_key's): a proxy named by its one IPv6 address
    # must not vouch for its neighbours.
    address = address_of(host)
    return address is not None and any(address in network for network in trusted)


# What an operator is told, once per process (a guesser could otherwise fill the log), and
# never with an address in it: the settings to fix when X-Forwarded-For goes unbelieved or
# the hop count does not match the proxies the header shows.
_UNTRUSTED = {
    "peer": "X-Forwarded-For came on a connection from an address not in TRUSTED_PROXIES, "
    "so it was not read. A caller who reaches the port directly, no proxy (a guesser, a "
    "scanner), causes this too: check that the connections come from your proxy before "
    "trusting more. If a proxy stands in front, add its addresses to the app's "
    "TRUSTED_PROXIES (ACCORD_CONSOLE__, ACCORD_DESK__ or ACCORD_GATEWAY__), or every user is "
    "counted as its one address (an IPv6 pod network of public addresses is in none of the "
    "private ranges the renders set)",
    "hop": "an X-Forwarded-For entry a trusted proxy wrote is not in TRUSTED_PROXIES, so it "
    "was counted as the client: if another proxy (a load balancer) stands in front of that "
    "one, add its addresses to TRUSTED_PROXIES too, or every user is counted as its one "
    "address",
    "more": "FORWARDED_HOPS is more than the proxies in front: a trusted proxy sent fewer "
    "X-Forwarded-For entries than it, so the first entry from the right not in "
    "TRUSTED_PROXIES (or, all being in it, the leftmost) was counted as the client. Lower "
    "FORWARDED_HOPS to the number of proxies that append, unless this was a caller who "
    "reached an inner proxy directly, past the outer ones",
    "less": "the X-Forwarded-For entry counted as the client is in TRUSTED_PROXIES. Most "
    "likely your users are on a private range that TRUSTED_PROXIES covers (staff on an "
    "internal network: both renders trust every private range), or a caller in it (a pod) "
    "reached the proxy directly: narrow TRUSTED_PROXIES to your proxies' own addresses "
    "first. Raise FORWARDED_HOPS only if another proxy that appends (a load balancer) really "
    "stands in front, with its addresses in TRUSTED_PROXIES: raised with no such proxy, it "
    "lets any user in TRUSTED_PROXIES choose the address counted as theirs by sending "
    "X-Forwarded-For (a fresh budget at each guess)",
}
# The header unread or a proxy's entry not believed; or the hop count looks wrong.
_EVENTS = {"peer": "forwarded_for_not_believed", "hop": "forwarded_for_not_believed",
           "more": "forwarded_hops_mismatch", "less": "forwarded_hops_mismatch"}  # fmt: skip
_warned: set[str] = set()


def _warn_once(kind: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        structlog.get_logger("accord.web").warning(_EVENTS[kind], why=_UNTRUSTED[kind])


class _Contained:
    """The outermost layer: an exception that escapes the app ends here, never in a log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001  # its type is logged, never its message
            if started:
                return  # the app's error page is sent: its handler logged the type already
            structlog.get_logger("accord.web").error("web_unhandled", error=type(exc).__name__)
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
                await send({"type": "http.response.body", "body": b"internal error"})


@contextlib.contextmanager
def stopped_by_sigterm(stop: asyncio.Event, *, serving: Callable[[], bool]) -> Iterator[None]:
    """SIGTERM (``docker stop``, a pod's end) stops a web app (the console, a desk) as
    Ctrl-C does, by setting ``stop``: its clients closed, its consumer group left, exit
    status 0. uvicorn catches it while it serves and raises it again once stopped, when this
    handler, not the default (death by the signal, nothing closed), takes it. Before the app
    serves (still connecting to Kafka, say) it ends the process at once, as it always did:
    nothing waits on ``stop`` yet, and a stop must not wait for Kafka to answer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, _frame: object) -> None:
        if serving():
            loop.call_soon_threadsafe(stop.set)
            return
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
