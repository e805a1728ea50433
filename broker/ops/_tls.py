"""When Kafka's TLS certificates expire, as a gauge each long-running process exports.

``accord_tls_certificate_expiry_timestamp_seconds{certificate=...}`` (Unix time):

- ``kafka-ca``: the CA file the clients trust (``kafka.ca_file``, which the caller has
  already resolved from the settings or the principal's client file); of a bundle of several,
  the one that expires first.
- ``kafka-broker``: the certificate each bootstrap broker presents in a TLS handshake, checked
  against that CA (or the system's trust store) and the address's name, as the Kafka clients
  check it; of several brokers, the one that expires first. No login is needed for this:
  the handshake ends before SASL would begin.

Read when the ops server starts and hourly after, in a daemon thread (file and network I/O
must not hold up the event loop, and a slow handshake must not hold up the process's exit).
A failure is logged with its kind only (never a path, an address or the error's text) and
leaves the gauge as it was: unset until the first good read, never a made-up 0. Over
PLAINTEXT there is no TLS and nothing is read. Label values are the two fixed strings above.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Gauge

from broker.config import KafkaSecurity, KafkaSettings

log = structlog.get_logger("accord.ops")

CA = "kafka-ca"
BROKER = "kafka-broker"
REFRESH_EVERY_S = 3600.0
_TIMEOUT_S = 5.0


def ca_not_after(path: Path) -> float:
    """When the first of the CA file's certificates to expire expires (Unix time).

    Read by loading the file as a TLS client would trust it (Python's ``ssl``: the same
    parser as the handshake, and no second x509 library outside ``broker.crypto``).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(path))
    times = [ssl.cert_time_to_seconds(str(c["notAfter"])) for c in context.get_ca_certs()]
    if not times:
        raise ValueError("the CA file holds no CA certificate")
    return float(min(times))


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap list (``a:9093,b:9093``, ``[::1]:9093``)."""
    out = []
    for item in bootstrap.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("a bootstrap address is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def presented_not_after(
    host: str, port: int, ca_file: Path | None, *, timeout: float = _TIMEOUT_S
) -> float:
    """When the certificate the server at ``host:port`` presents expires (Unix time),
    after verifying it against ``ca_file`` (None: the system's CAs) and ``host``."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        cert = tls.getpeercert()
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        raise ssl.SSLError("the server presented no certificate")
    return float(ssl.cert_time_to_seconds(not_after))


class TlsExpiry:
    """The expiry gauge, and what fills it from one Kafka cluster's settings."""

    def __init__(
        self, registry: CollectorRegistry, kafka: KafkaSettings, *, timeout: float = _TIMEOUT_S
    ) -> None:
        self.kafka = kafka
        self.timeout = timeout
        self.gauge = Gauge(
            "accord_tls_certificate_expiry_timestamp_seconds",
            "When a TLS certificate expires (Unix time): kafka-ca, kafka-broker.",
            ["certificate"],
            registry=registry,
        )

    @property
    def secured(self) -> bool:
        return self.kafka.security_protocol is not KafkaSecurity.PLAINTEXT

    def refresh(self) -> None:
        """Read both certificates now (blocking); what cannot be read stays as it was."""
        if not self.secured:
            return
        ca = self.kafka.ca_file
        if ca is not None:
            self._set(CA, lambda: ca_not_after(ca))
        self._set(BROKER, self._broker_not_after)

    def _broker_not_after(self) -> float:
        times = []
        failed: Exception | None = None
        for host, port in bootstrap_addresses(self.kafka.bootstrap):
            try:
                times.append(presented_not_after(host, port, self.kafka.ca_file,
                                                 timeout=self.timeout))  # fmt: skip
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                failed = exc
        if not times:
            raise failed or ValueError("no bootstrap address")
        return min(times)

    def _set(self, certificate: str, read: Callable[[], float]) -> None:
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001  # any failure leaves the gauge; the thread lives on
            # The kind only: the error's text may hold a path or an address.
            log.warning("tls_expiry_unread", certificate=certificate, error=type(exc).__name__)
            return
        self.gauge.labels(certificate=certificate).set(value)


@contextlib.contextmanager
def watching_tls(
    registry: CollectorRegistry, kafka: KafkaSettings, *, every: float = REFRESH_EVERY_S
) -> Iterator[TlsExpiry]:
    """The expiry gauge on ``registry``, read now and every ``every`` seconds in the block."""
    expiry = TlsExpiry(registry, kafka)
    if not expiry.secured:
        yield expiry
        return
    stop = threading.Event()

    def watch() -> None:
        while True:
            expiry.refresh()
            if stop.wait(every):
                return

    thread = threading.Thread(target=watch, name="accord-tls-expiry", daemon=True)
    thread.start()
    try:
        yield expiry
    finally:
        stop.set()
