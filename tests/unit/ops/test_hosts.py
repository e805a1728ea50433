"""The ops server answers only an address, localhost or a listed name in Host: DNS
rebinding refused, by names that look local too (LLMNR, mDNS, DNS search lists)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from broker.config import OpsEndpoint, WorkerSettings, load_settings
from broker.errors import ConfigError
from broker.ops import OK, OpsServer, serving_ops
from broker.ops._hosts import OpsHosts

#: What the kubelet, Kubernetes discovery and the Compose health checks reach an ops server by.
ALLOWED = [
    "127.0.0.1",
    "127.0.0.1:9464",
    "10.244.1.7:9464",  # a pod's address: the kubelet's probes, Kubernetes discovery
    "[::1]",
    "[::1]:9464",
    "[fd00:10:244::7]:9464",
    "localhost",
    "LocalHost:9464",
]

#: Names others on the network can answer for without a listing: LLMNR and NetBIOS answer a
#: single-label name, multicast DNS a .local one, and a search list makes either the
#: organisation's, where AD-integrated DNS lets any signed-in user add records.
LOOK_LOCAL = [
    "evil",
    "stats:9464",
    "worker",  # Compose's service name: the Compose render lists it
    "worker:9464",
    "desk-coordinating-team:9467",
    "printer.local",
    "a.svc.cluster.local",
    "accord-worker-ops.accord:9464",  # <service>.<namespace>: a Prometheus in another namespace
    "accord-worker-ops.accord.svc",
    "accord-worker-ops.accord.svc:9464",
    "accord-worker-ops.accord.svc.cluster.local:9464",
    "10-244-1-7.accord.pod.cluster.local:9464",
]

#: Names a page on another site can make resolve to the ops server's address, and malformed.
REFUSED = [
    *LOOK_LOCAL,
    "evil.example",
    "evil.example:9464",
    "127.0.0.1.nip.io",
    "127.0.0.1.nip.io:9464",
    "evil.example.",
    "worker.",  # absolute: a top-level domain, not the Compose service
    "localhost.",
    "127.0.0.1.",
    "accord.svc.evil.example",
    "svc.cluster.local.evil.example:9464",
    "",
    "::1",  # IPv6 without brackets
    "[::1",
    "[evil.example]",
    "worker:http",
    "worker:",
    "worker:9464:9464",
    "evil example",
]


async def _get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def _request(*headers: str, path: str = "/metrics") -> bytes:
    return f"GET {path} HTTP/1.1\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """An ops server on loopback whose metrics hold a count, answering ``metrics.example.org``
    beyond the names it always answers."""
    registry = CollectorRegistry()
    Counter("accord_decisions", "Decisions.", ["recipient"], registry=registry).labels(
        "coordinating-team"
    ).inc()
    endpoint = OpsEndpoint(metrics_port=0, metrics_allowed_hosts=("Metrics.Example.org",))
    async with serving_ops(endpoint, registry, live=lambda: OK, ready=lambda: OK) as ops:
        assert ops is not None
        yield ops.port


@pytest.mark.parametrize("host", ALLOWED)
async def test_addresses_and_localhost_are_answered_with_no_setting(port: int, host: str) -> None:
    answer = await _get(port, _request(f"Host: {host}"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"coordinating-team" in answer


@pytest.mark.parametrize("host", REFUSED)
async def test_any_other_name_is_refused_with_a_body_that_names_nothing(
    port: int, host: str
) -> None:
    answer = await _get(port, _request(f"Host: {host}"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert body == b"bad request\n"
    assert b"coordinating-team" not in answer


async def test_a_refused_host_is_refused_on_the_probes_and_on_unknown_paths_too(
    port: int,
) -> None:
    for path in ("/livez", "/readyz", "/nope"):
        answer = await _get(port, _request("Host: evil.example", path=path))
        assert answer.startswith(b"HTTP/1.1 400 "), path


async def test_a_listed_name_is_answered_in_any_case_and_with_any_port(port: int) -> None:
    for host in ("metrics.example.org", "METRICS.example.ORG:9464"):
        assert (await _get(port, _request(f"Host: {host}"))).startswith(b"HTTP/1.1 200 ")
    assert (await _get(port, _request("Host: other.example.org"))).startswith(b"HTTP/1.1 400 ")


async def test_no_host_two_hosts_or_a_folded_host_is_refused(port: int) -> None:
    refused = [
        _request(),
        b"GET /metrics HTTP/1.0\r\n\r\n",
        _request("Host: 127.0.0.1", "Host: evil.example"),
        _request("Host: 127.0.0.1", "host: 127.0.0.1"),
        _request("Host: localhost", " .evil.example"),
    ]
    for request in refused:
        answer = await _get(port, request)
        assert answer.startswith(b"HTTP/1.1 400 "), request
        assert answer.endswith(b"\r\n\r\nbad request\n"), request


async def test_the_header_name_is_matched_in_any_case_and_other_headers_are_ignored(
    port: int,
) -> None:
    answer = await _get(port, _request("Accept: text/plain", "HOST:127.0.0.1:9464", "X-A: b"))
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_server_built_without_a_list_answers_only_addresses_and_localhost() -> None:
    ops = OpsServer(CollectorRegistry(), live=lambda: OK, ready=lambda: OK)
    assert all(ops.hosts.allows(host) for host in ALLOWED)
    assert not any(ops.hosts.allows(host) for host in LOOK_LOCAL)
    assert not ops.hosts.allows("metrics.example.org")


def test_a_listed_single_label_or_service_namespace_name_is_answered_and_no_other() -> None:
    """What the Compose render lists (the service's name) and what a Prometheus in another
    namespace scrapes (``<service>.<namespace>``) are answered once listed, and only they."""
    endpoint = OpsEndpoint(metrics_allowed_hosts=("worker", "accord-worker-ops.accord"))
    hosts = OpsHosts.of(endpoint)
    assert hosts.allows("worker:9464")
    assert hosts.allows("Accord-Worker-Ops.accord:9464")
    assert not hosts.allows("worker.:9464")  # absolute: a top-level domain, listed or not
    assert not hosts.allows("indexer:9465")
    assert not hosts.allows("accord-worker-ops.accord.svc:9464")


def test_the_setting_holds_names_lower_case_and_drops_addresses() -> None:
    given = WorkerSettings(metrics_allowed_hosts=" Prom.Example.org. , 10.0.0.1,[::1]")
    assert given.metrics_allowed_hosts == ("prom.example.org",)
    assert WorkerSettings().metrics_allowed_hosts == ()


@pytest.mark.parametrize(
    "entry", ["*", "https://prom.example.org", "prom.example.org:9090", "prom.example.org/x"]
)
def test_the_setting_refuses_what_is_not_a_name_and_says_which_entry_not_what(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("ACCORD_WORKER__METRICS_ALLOWED_HOSTS", f"ok.example,{entry}")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert str(refused.value) == (
        "ACCORD_WORKER__METRICS_ALLOWED_HOSTS: entry 2 is not a host name "
        "(a name alone: no scheme, port, path or '*')"
    )
