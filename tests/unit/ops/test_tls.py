"""When Kafka's certificates expire: the CA file's, and the one a broker presents, each a gauge
labelled by role only; what cannot be read is logged by kind and left unset."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from broker.config import KafkaSecurity, KafkaSettings, OpsEndpoint
from broker.crypto import tls_ca, tls_leaf, tls_not_after
from broker.ops import OK, serving_ops
from broker.ops._tls import (
    TlsExpiry,
    bootstrap_addresses,
    ca_not_after,
    presented_not_after,
    watching_tls,
)

GAUGE = "accord_tls_certificate_expiry_timestamp_seconds"


def _value(registry: CollectorRegistry, certificate: str) -> float | None:
    return registry.get_sample_value(GAUGE, {"certificate": certificate})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA (10 years) and a broker certificate it signed for 127.0.0.1 (30 days)."""
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = tls_ca("test CA", days=3650)
    leaf, key = tls_leaf(ca, ca_key, "kafka-broker", hosts=["127.0.0.1"], days=30)
    other, _ = tls_ca("someone else's CA", days=3650)
    files = {"ca": ca, "leaf": leaf, "key": key, "other": other}
    for name, data in files.items():
        (d / f"{name}.pem").write_bytes(data)
    return {name: d / f"{name}.pem" for name in files}


@contextlib.contextmanager
def tls_server(pki: dict[str, Path]) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 presenting the broker certificate: its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["leaf"], pki["key"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), conn:
                conn.settimeout(5)
                with context.wrap_socket(conn, server_side=True):
                    pass  # the handshake is all a client of this test needs

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_ca_bundle_expires_when_its_first_certificate_does(tmp_path: Path) -> None:
    soon, _ = tls_ca("soon", days=10)
    later, _ = tls_ca("later", days=100)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(later + soon)
    assert ca_not_after(bundle) == tls_not_after(soon).timestamp()


def test_bootstrap_addresses() -> None:
    assert bootstrap_addresses("a:9093, b.example:9094,[::1]:9095") == [
        ("a", 9093), ("b.example", 9094), ("::1", 9095),
    ]  # fmt: skip
    for bad in ("a", "a:", ":9093", "a:port"):
        with pytest.raises(ValueError, match="host:port"):
            bootstrap_addresses(bad)


def test_both_certificates_are_read_and_verified(pki: dict[str, Path]) -> None:
    with tls_server(pki) as port:
        assert presented_not_after("127.0.0.1", port, pki["ca"]) == (
            tls_not_after(pki["leaf"].read_bytes()).timestamp()
        )
        registry = CollectorRegistry()
        TlsExpiry(registry, KafkaSettings(bootstrap=f"127.0.0.1:{port}", ca_file=pki["ca"])
                  ).refresh()  # fmt: skip
    assert _value(registry, "kafka-ca") == tls_not_after(pki["ca"].read_bytes()).timestamp()
    assert _value(registry, "kafka-broker") == tls_not_after(pki["leaf"].read_bytes()).timestamp()
    text = generate_latest(registry).decode()
    assert str(port) not in text
    assert "127.0.0.1" not in text


def test_a_broker_the_ca_did_not_sign_is_logged_by_kind_and_left_unset(
    pki: dict[str, Path],
) -> None:
    with tls_server(pki) as port, capture_logs() as logs:
        registry = CollectorRegistry()
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", ca_file=pki["other"])
        TlsExpiry(registry, kafka).refresh()
    assert _value(registry, "kafka-broker") is None
    assert _value(registry, "kafka-ca") is not None  # the file itself reads fine
    [line] = logs
    assert line == {"event": "tls_expiry_unread", "log_level": "warning",
                    "certificate": "kafka-broker", "error": "SSLCertVerificationError"}  # fmt: skip


def test_what_cannot_be_read_leaves_the_last_good_value(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    with tls_server(pki) as port:
        expiry = TlsExpiry(registry, KafkaSettings(bootstrap=f"127.0.0.1:{port}",
                                                   ca_file=pki["ca"]), timeout=1)  # fmt: skip
        expiry.refresh()
    good = _value(registry, "kafka-broker")
    assert good is not None
    with capture_logs() as logs:
        expiry.refresh()  # nobody listens there now
        expiry.kafka = expiry.kafka.model_copy(update={"ca_file": tmp_path / "missing.pem"})
        expiry.refresh()
    assert _value(registry, "kafka-broker") == good
    assert {(x["certificate"], x["error"]) for x in logs} >= {
        ("kafka-broker", "ConnectionRefusedError"), ("kafka-ca", "FileNotFoundError"),
    }  # fmt: skip
    assert all(str(tmp_path) not in str(x) and str(port) not in str(x) for x in logs)


def test_a_ca_file_that_is_not_pem_is_logged_and_left_unset(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    registry = CollectorRegistry()
    with capture_logs() as logs:
        TlsExpiry(registry, KafkaSettings(bootstrap="127.0.0.1:1", ca_file=junk), timeout=1
                  ).refresh()  # fmt: skip
    assert _value(registry, "kafka-ca") is None
    assert _value(registry, "kafka-broker") is None
    assert {x["certificate"] for x in logs} == {"kafka-ca", "kafka-broker"}


def test_plaintext_has_no_certificates_and_reads_nothing() -> None:
    registry = CollectorRegistry()
    kafka = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol=KafkaSecurity.PLAINTEXT)
    with capture_logs() as logs, watching_tls(registry, kafka) as expiry:
        expiry.refresh()
    assert logs == []
    assert f"# TYPE {GAUGE} gauge" in generate_latest(registry).decode()  # declared, no sample
    assert _value(registry, "kafka-broker") is None


def test_the_watch_reads_at_start_and_stops_with_its_block(pki: dict[str, Path]) -> None:
    registry = CollectorRegistry()
    with tls_server(pki) as port:
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", ca_file=pki["ca"])
        with watching_tls(registry, kafka, every=3600):
            for _ in range(100):
                if _value(registry, "kafka-broker") is not None:
                    break
                time.sleep(0.05)
        assert _value(registry, "kafka-broker") is not None
        time.sleep(0.1)
    assert not any(t.name == "accord-tls-expiry" for t in threading.enumerate())


async def test_the_ops_server_exports_the_expiry_of_the_kafka_it_is_given(
    pki: dict[str, Path],
) -> None:
    registry = CollectorRegistry()
    with tls_server(pki) as port:
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", ca_file=pki["ca"])
        async with serving_ops(OpsEndpoint(metrics_port=0), registry, live=lambda: OK,
                               ready=lambda: OK, kafka=kafka) as server:  # fmt: skip
            assert server is not None
            for _ in range(100):
                if _value(registry, "kafka-broker") is not None:
                    break
                await asyncio.sleep(0.05)
            status, _, body = server.answer("GET", "/metrics")
    assert status == 200
    assert f'{GAUGE}{{certificate="kafka-broker"}}' in body.decode()
    assert f'{GAUGE}{{certificate="kafka-ca"}}' in body.decode()


async def test_without_kafka_the_ops_server_has_no_expiry_gauge() -> None:
    registry = CollectorRegistry()
    async with serving_ops(OpsEndpoint(metrics_port=0), registry, live=lambda: OK,
                           ready=lambda: OK) as server:  # fmt: skip
        assert server is not None
        assert GAUGE not in server.answer("GET", "/metrics")[2].decode()
