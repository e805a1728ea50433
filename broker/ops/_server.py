"""The ops server: ``/metrics``, ``/livez`` and ``/readyz`` for one long-running process.

A few dozen lines of HTTP/1.1 on ``asyncio.start_server``, in the process's own event loop,
rather than prometheus_client's ``start_http_server`` (which serves only metrics) or a second
web framework: answering at all shows the loop is not blocked, and the probes read the
process's state from the thread that writes it. Every answer is small, uncached and closes
its connection; requests are bounded (one line of 2 KiB, 50 headers, 5 s) because the port
may face a network, and answered only for a ``Host`` that is an address, ``localhost`` or a
listed name (``broker.ops._hosts``: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from broker.config import KafkaSettings, OpsEndpoint
from broker.errors import UsageError
from broker.ops._health import Check, Probe
from broker.ops._hosts import OpsHosts, printable
from broker.ops._tls import watching_tls

log = structlog.get_logger("accord.ops")

_LINE = 2048
_HEADERS = 50
_TIMEOUT_S = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}  # fmt: skip

Answer = tuple[int, str, bytes]  # status, content type, body
_BAD = b"bad request\n"


def _probe_answer(check: Check) -> Answer:
    body = {"status": "ok" if check.ok else "unavailable", "reason": check.reason}
    return (200 if check.ok else 503), "application/json", json.dumps(body).encode()


class OpsServer:
    """Answers probes from ``live`` and ``ready`` and metrics from ``registry``, to requests
    whose ``Host`` ``hosts`` allows (by default: addresses and ``localhost`` only)."""

    def __init__(
        self, registry: CollectorRegistry, *, live: Probe, ready: Probe,
        hosts: OpsHosts | None = None,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.live = live
        self.ready = ready
        self.hosts = hosts if hosts is not None else OpsHosts()
        self._server: asyncio.Server | None = None

    def answer(self, method: str, target: str) -> Answer:
        """The answer to ``method target`` (HEAD as GET; the caller drops the body)."""
        path = target.split("?", 1)[0]
        if path not in ("/metrics", "/livez", "/readyz"):
            return 404, "text/plain", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        if path == "/livez":
            return _probe_answer(self.live())
        if path == "/readyz":
            # Not live is not ready either: a stalled loop is not doing its job.
            live = self.live()
            return _probe_answer(live if not live.ok else self.ready())
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one picked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise UsageError("the ops server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, host, port, limit=_LINE)
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics and probes on {host}:{port}: {exc.strerror or exc}"
            ) from None
        log.debug("ops_server_started", host=host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, kind, body, head = await asyncio.wait_for(self._read(reader), _TIMEOUT_S)
            reason = _REASONS.get(status, "Error")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n".encode()
                + (b"" if head else body)
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a client that went away or dawdled: nothing to answer
        except Exception as exc:  # noqa: BLE001  # one bad request must not end the server
            log.warning("ops_request_failed", error=type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        hosts: list[str] = []
        folded = False
        try:
            line = await reader.readuntil(b"\n")
            for _ in range(_HEADERS + 1):
                header = (await reader.readuntil(b"\n")).decode("latin-1")
                if header.strip() == "":
                    break
                # A continuation line (obsolete folding) could stretch a Host past what was
                # checked: refused (RFC 9112, 5.2), as no client of this port sends one.
                folded = folded or header[0] in " \t"
                name, _, value = header.partition(":")
                if name.strip().lower() == "host":
                    hosts.append(value)
            else:
                return 400, "text/plain", b"too many headers\n", False
        except asyncio.LimitOverrunError:
            return 400, "text/plain", b"request too long\n", False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):  # method, target, version
            return 400, "text/plain", _BAD, False
        # One Host, allowed; a refusal says nothing of why, nor which names would do.
        if folded or len(hosts) > 1 or not self.hosts.allows(hosts[0] if hosts else None):
            log.warning("ops_host_refused", host=printable(hosts[0].strip() if hosts else None))
            return 400, "text/plain", _BAD, False
        status, kind, body = self.answer(parts[0], parts[1])
        return status, kind, body, parts[0] == "HEAD"


@contextlib.asynccontextmanager
async def serving_ops(
    endpoint: OpsEndpoint,
    registry: CollectorRegistry,
    *,
    live: Probe,
    ready: Probe,
    kafka: KafkaSettings | None = None,
) -> AsyncIterator[OpsServer | None]:
    """An ops server on ``endpoint`` for the block (None, and nothing served, if no port).

    With ``kafka`` (the process's resolved client settings), its metrics include when that
    cluster's TLS certificates expire (``broker.ops._tls``), read at start and hourly.
    """
    if endpoint.metrics_port is None:
        yield None
        return
    server = OpsServer(registry, live=live, ready=ready, hosts=OpsHosts.of(endpoint))
    await server.start(endpoint.metrics_host, endpoint.metrics_port)
    try:
        with contextlib.ExitStack() as watching:
            if kafka is not None:
                watching.enter_context(watching_tls(registry, kafka))
            yield server
    finally:
        await server.close()
