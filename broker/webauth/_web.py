"""What every Accord web app shares at the HTTP edge: headers, form bounds, the listening socket.

Every response carries a Content-Security-Policy that allows no script and no inline style,
``no-store`` caching (pages hold data about children) and no referrer. A POST body is refused
before anything parses it unless it is a small plain form.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import UsageError

__all__ = [
    "CSP",
    "MAX_BODY",
    "SECURITY_HEADERS",
    "bad_body",
    "form_field",
    "listen",
    "loopback",
    "read_form",
    "url_host",
]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
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
