"""A real worker, ``accord audit index --follow``, ``accord console`` and a co-ordinating
team's ``accord desk`` and ``accord desk flags`` answer probes and export metrics.

Each runs as a subprocess on an embedded broker (secured, as a deployment is), with its ops
server on a port of its own; the worker's is set by option, the others' by environment. Once
the worker has consumed and the indexer caught up, ``/livez`` and ``/readyz`` answer 200 and
``/metrics`` holds their ``accord_`` metrics: between them, every metric the shipped alert
rules and dashboard query, and in each, when the broker's TLS certificates expire.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.deploy._observability import (
    exported_metric_names,
    promql_metric_names,
    shipped_expressions,
)
from broker.devkafka import EmbeddedKafka, free_port
from broker.sdk import Publisher
from tests.e2e.worker_proc import POLICIES, WorkerProcess, incidents, prepared, received_ids
from tests.kafka_helpers import clients, kafka_env, tries_within

pytestmark = pytest.mark.slow


def _get(port: int, path: str, *, host: str | None = None) -> tuple[int, str]:
    """``path`` of the ops server on ``port``; ``host``: the ``Host`` sent instead of
    127.0.0.1's, as a DNS-rebinding page's would be."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host} if host else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310  # a fixed http URL
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


async def _live_and_refusing_a_rebinding_page(port: int) -> None:
    """``/livez`` answers 200 by address; a page whose own name resolves to the ops server's
    address reads nothing (pen-test finding 4: it read the decisions per recipient), a
    single-label name's neither (LLMNR lets any machine on the segment answer one)."""
    status, body = await asyncio.to_thread(_get, port, "/livez")
    assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
    for host in ("evil.example:9464", "stats:9464"):
        for path in ("/metrics", "/livez"):
            refused = await asyncio.to_thread(_get, port, path, host=host)
            assert refused == (400, "bad request\n"), (host, path)


async def _until_ready(port: int, alive: Callable[[], bool], tail: Callable[[], str]) -> None:
    for _ in range(240):
        status, _ = await asyncio.to_thread(_get, port, "/readyz")
        if status == 200:
            return
        assert alive(), tail()
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready within 2 minutes: {tail()}")


TLS_EXPIRY = "accord_tls_certificate_expiry_timestamp_seconds"
CONTACT = "accord_desk_kafka_contact_timestamp_seconds"


def _tls_expiry(body: str) -> dict[str, float]:
    """``{certificate: expiry}`` from a /metrics body."""
    out = {}
    for line in body.splitlines():
        if line.startswith(TLS_EXPIRY + "{"):
            label, value = line.split("} ")
            out[label.split('certificate="')[1].rstrip('"')] = float(value)
    return out


async def _until_exported(port: int, wanted: str) -> str:
    """The /metrics body once ``wanted`` appears in it (a background read fills it)."""
    body = ""
    for _ in range(100):
        status, body = await asyncio.to_thread(_get, port, "/metrics")
        if status == 200 and wanted in body:
            break
        await asyncio.sleep(0.1)
    return body


async def _scraped_once_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> str:
    """The /metrics body of a subprocess once it is ready and has read the TLS expiry."""
    await _until_ready(port, lambda: proc.poll() is None, lambda: log.read_text()[-3000:])
    return await _until_exported(port, 'certificate="kafka-broker"')


def _console(
    tmp_path: Path, env: dict[str, str], port: int
) -> subprocess.Popen[bytes]:  # fmt: skip
    """``accord console --no-index`` (the indexer above keeps the index), with an account."""
    console_env = {**env, "ACCORD_CONSOLE__METRICS_PORT": str(port)}
    subprocess.run(  # our own CLI
        [sys.executable, "-m", "broker", "console", "add-user", "ig.ops", "--password-stdin",
         "--no-totp"],
        env=console_env, input=b"a long synthetic passphrase", capture_output=True,
        check=True, timeout=120,
    )  # fmt: skip
    with (tmp_path / "console.log").open("ab") as fh:
        return subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "console", "--port", "0", "--no-index",
             "--policies", str(POLICIES)],
            env=console_env, stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip


def _gateway(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``accord gateway --as wmp`` on a free port, its ops server on ``port``."""
    token = tmp_path / "gateway-token"
    token.write_text("synthetic-gateway-token-" + "x" * 40)
    token.chmod(0o600)
    gateway_env = {**env, "ACCORD_GATEWAY__TOKEN_FILE": str(token),
                   "ACCORD_GATEWAY__METRICS_PORT": str(port)}  # fmt: skip
    with (tmp_path / "gateway.log").open("ab") as fh:
        return subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "gateway", "--as", "wmp", "--port", "0"],
            env=gateway_env, stdout=subprocess.DEVNULL, stderr=fh,
        )  # fmt: skip


TEAM = "sandwell-coord"


def _team_desks(tmp_path: Path, env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    """The team's desk (with an account, or it is not ready) and its flag service, each with
    its ops server on the port ``ACCORD_DESK__METRICS_PORT`` gives, as a container sets it
    (``env`` holds DESK_PORT and FLAGS_PORT)."""
    desk_env = {**env, "ACCORD_POLICIES": str(POLICIES)}
    subprocess.run(  # our own CLI
        [sys.executable, "-m", "broker", "desk", "add-user", "--as", TEAM, "kim.ward",
         "--password-stdin", "--no-totp"],
        env=desk_env, input=b"a long synthetic passphrase", capture_output=True, check=True,
        timeout=120,
    )  # fmt: skip
    procs = {}
    for name, args in (("desk", ("--as", TEAM, "--port", "0")), ("flags", ("flags", "--as", TEAM))):
        with (tmp_path / f"{name}.log").open("ab") as fh:
            procs[name] = subprocess.Popen(  # our own CLI
                [sys.executable, "-m", "broker", "desk", *args],
                env={**desk_env, "ACCORD_DESK__METRICS_PORT": env[f"{name.upper()}_PORT"]},
                stdout=subprocess.DEVNULL, stderr=fh,
            )  # fmt: skip
    return procs


def _contact_at(body: str) -> float | None:
    found = [ln for ln in body.splitlines() if ln.startswith(CONTACT + " ")]
    return float(found[0].split()[-1]) if found else None


async def _heard_from_kafka(port: int) -> str:
    """The /metrics body once the contact gauge has moved from its first value: it starts at
    the start time and only an answer from Kafka moves it (asked every 30 s at most)."""
    first = _contact_at((await asyncio.to_thread(_get, port, "/metrics"))[1])
    assert first is not None
    for _ in range(100):
        _, body = await asyncio.to_thread(_get, port, "/metrics")
        at = _contact_at(body)
        if at is not None and at > first:
            return body
        await asyncio.sleep(0.5)
    raise AssertionError(f"Kafka's last answer stayed at {first}")


async def _desks_scraped(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    """The team's desk's and flag service's /metrics, once ready and heard from Kafka."""
    ports = {"desk": free_port(), "flags": free_port()}
    desks = _team_desks(tmp_path, {**env, "DESK_PORT": str(ports["desk"]),
                                   "FLAGS_PORT": str(ports["flags"])})  # fmt: skip
    try:
        for name, proc in desks.items():
            await _scraped_once_ready(ports[name], proc, tmp_path / f"{name}.log")
        heard = await asyncio.gather(*(_heard_from_kafka(ports[n]) for n in desks))
        bodies = dict(zip(desks, heard, strict=True))
        for name in desks:  # ... and the TLS expiry, read in the background
            bodies[name] = await _until_exported(ports[name], 'certificate="kafka-broker"')
    finally:
        for proc in desks.values():
            proc.terminate()
            proc.wait(timeout=60)
    for name, proc in desks.items():
        assert proc.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    return bodies


async def test_the_worker_and_the_indexer_answer_probes_and_export_metrics(  # noqa: PLR0915  # one story: every process started, scraped and stopped in turn
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    worker.start("--metrics-host", "127.0.0.1")
    index_port = free_port()
    index_log = tmp_path / "index.log"
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), **kafka_env(bootstrap),
           "ACCORD_KEYSTORE__PATH": str(keys.path),
           "ACCORD_AUDIT_DB": f"sqlite:///{tmp_path / 'audit.db'}",
           "ACCORD_INDEXER__METRICS_PORT": str(index_port)}  # fmt: skip
    indexer: subprocess.Popen[bytes] | None = None
    console: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    bodies: dict[str, str] = {}
    try:
        await _until_ready(worker.metrics_port, worker.alive, worker.tail)
        events = incidents(20)
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events)
        for _ in tries_within(240):
            if len(await received_ids(bootstrap)) == len(events):
                break
            await asyncio.sleep(0.5)
        await _live_and_refusing_a_rebinding_page(worker.metrics_port)
        body = await _until_exported(worker.metrics_port, 'certificate="kafka-broker"')
        assert "accord_events_received_total" in body
        assert 'accord_transactions_total{result="committed"}' in body
        bodies["worker"] = body

        with index_log.open("ab") as fh:
            indexer = subprocess.Popen(
                [sys.executable, "-m", "broker", "audit", "index", "--follow",
                 "--db", f"sqlite:///{tmp_path / 'audit.db'}"],
                env=env, stdout=subprocess.DEVNULL, stderr=fh,
            )  # fmt: skip
        body = await _scraped_once_ready(index_port, indexer, index_log)
        indexed = [ln for ln in body.splitlines() if ln.startswith("accord_audit_indexed_records")]
        assert indexed, body
        assert float(indexed[0].split()[-1]) > 0
        assert "accord_audit_chains_broken 0.0" in body
        # Every transaction ends with its signed checkpoint: nothing is left waiting for one.
        assert "accord_audit_unsigned_oldest_seconds 0.0" in body
        assert "accord_audit_overrides_overdue 0.0" in body  # none made, none overdue
        assert (await asyncio.to_thread(_get, index_port, "/livez"))[0] == 200
        bodies["indexer"] = body

        console_port = free_port()
        console = _console(tmp_path, env, console_port)
        bodies["console"] = await _scraped_once_ready(
            console_port, console, tmp_path / "console.log"
        )
        assert "accord_console_sign_ins_total" in bodies["console"]
        bodies.update(await _desks_scraped(tmp_path, env))
        gateway_port = free_port()
        gateway = _gateway(tmp_path, env, gateway_port)
        bodies["gateway"] = await _scraped_once_ready(
            gateway_port, gateway, tmp_path / "gateway.log"
        )
        assert "accord_gateway_requests_total" in bodies["gateway"]
    finally:
        for proc in (console, indexer, gateway):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        worker.stop()
    assert indexer.returncode == 0, index_log.read_text()[-3000:]
    # SIGTERM, as a pod's end sends it: a clean stop, not death by the signal.
    assert console is not None
    assert console.returncode == 0, (tmp_path / "console.log").read_text()[-3000:]
    assert gateway is not None
    assert gateway.returncode == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    _check_exports(bodies)


def _check_exports(bodies: dict[str, str]) -> None:
    """What the six /metrics bodies hold between them."""
    # When the broker's certificates expire, read by each process from the CA file its client
    # file names and from a handshake with the broker: both in the future, the same for all.
    expiries = {name: _tls_expiry(body) for name, body in bodies.items()}
    assert len({json.dumps(e, sort_keys=True) for e in expiries.values()}) == 1, expiries
    assert set(expiries["worker"]) == {"kafka-ca", "kafka-broker"}
    assert all(at > time.time() for at in expiries["worker"].values())

    # Every metric a shipped alert rule or dashboard panel queries is one a process exports
    # (``up`` is Prometheus' own): a rule on a metric nobody exports would never fire.
    exported = set().union(*(exported_metric_names(body) for body in bodies.values()))
    for where, expr in shipped_expressions().items():
        missing = promql_metric_names(expr) - exported - {"up"}
        assert not missing, f"{where} queries {sorted(missing)}, which no process exports"
    # When Kafka last answered the desk and the flag service (AccordDeskKafkaUnreachable
    # queries it): each exports it, recent.
    for name in ("desk", "flags"):
        at = _contact_at(bodies[name])
        assert at is not None, name
        assert time.time() - at < 120, (name, at)
