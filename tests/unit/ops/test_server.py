"""The ops server: probes from the process's state, metrics from its registry, small answers."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry, Counter

from broker.config import OpsEndpoint
from broker.errors import UsageError
from broker.ops import OK, Check, Heartbeat, OpsServer, first_failure, serving_ops


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def server(*, live: Check = OK, ready: Check = OK) -> OpsServer:
    registry = CollectorRegistry()
    Counter("accord_test_things", "Things.", registry=registry).inc(3)
    return OpsServer(registry, live=lambda: live, ready=lambda: ready)


def test_probes_answer_200_when_the_process_is_live_and_ready() -> None:
    ops = server()
    for path in ("/livez", "/readyz"):
        status, kind, body = ops.answer("GET", path)
        assert (status, kind) == (200, "application/json")
        assert json.loads(body) == {"status": "ok", "reason": "ok"}


def test_not_ready_is_503_with_the_reason_and_nothing_else() -> None:
    status, _, body = server(ready=Check(ok=False, reason="catching up")).answer("GET", "/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "unavailable", "reason": "catching up"}


def test_a_process_that_is_not_live_is_not_ready_either() -> None:
    ops = server(live=Check(ok=False, reason="main loop stalled"))
    assert ops.answer("GET", "/livez")[0] == 503
    status, _, body = ops.answer("GET", "/readyz")
    assert (status, json.loads(body)["reason"]) == (503, "main loop stalled")


def test_metrics_are_the_registrys_prometheus_text() -> None:
    status, kind, body = server().answer("GET", "/metrics?name[]=x")
    assert status == 200
    assert kind.startswith("text/plain; version=")
    assert b"accord_test_things_total 3.0" in body


def test_other_paths_and_methods_are_refused() -> None:
    ops = server()
    assert ops.answer("GET", "/")[0] == 404
    assert ops.answer("GET", "/login")[0] == 404
    assert ops.answer("POST", "/readyz")[0] == 405


def test_a_heartbeat_is_live_while_starting_and_while_recent_and_not_once_stale() -> None:
    ticks = Ticks()
    beat = Heartbeat(30.0, clock=ticks)
    assert beat.check() == Check(ok=True, reason="starting")
    assert not beat.beaten
    beat.beat()
    ticks.now += 30.0
    assert beat.check() == OK
    ticks.now += 0.5
    assert beat.check() == Check(ok=False, reason="main loop stalled")
    beat.beat()
    assert beat.check() == OK


def test_the_first_failing_check_is_the_answer() -> None:
    calls: list[str] = []

    def probe(name: str, ok: bool) -> Check:
        calls.append(name)
        return Check(ok=ok, reason=name)

    assert first_failure([lambda: probe("a", True), lambda: probe("b", False),
                          lambda: probe("c", False)]) == Check(ok=False, reason="b")  # fmt: skip
    assert calls == ["a", "b"]
    assert first_failure([]) == OK


async def _get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_it_serves_http_on_the_configured_port_and_closes_each_connection() -> None:
    endpoint = OpsEndpoint(metrics_port=0)
    async with serving_ops(
        endpoint, CollectorRegistry(), live=lambda: OK,
        ready=lambda: Check(ok=False, reason="starting"),
    ) as ops:  # fmt: skip
        assert ops is not None
        live = await _get(ops.port, b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
        ready = await _get(ops.port, b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await _get(ops.port, b"HEAD /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
        junk = await _get(ops.port, b"nonsense\r\n\r\n")
        huge = await _get(ops.port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert live.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in live
    assert live.endswith(b'{"status": "ok", "reason": "ok"}')
    assert ready.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert head.endswith(b"\r\n\r\n")
    assert junk.startswith(b"HTTP/1.1 400")
    assert huge.startswith(b"HTTP/1.1 400")


async def test_no_port_means_no_server() -> None:
    async with serving_ops(OpsEndpoint(), CollectorRegistry(), live=lambda: OK,
                           ready=lambda: OK) as ops:  # fmt: skip
        assert ops is None


async def test_a_port_in_use_is_one_clear_error() -> None:
    async with serving_ops(OpsEndpoint(metrics_port=0), CollectorRegistry(), live=lambda: OK,
                           ready=lambda: OK) as first:  # fmt: skip
        assert first is not None
        taken = OpsEndpoint(metrics_port=first.port)
        with pytest.raises(UsageError, match=r"cannot serve metrics and probes on 127\.0\.0\.1"):
            async with serving_ops(taken, CollectorRegistry(), live=lambda: OK, ready=lambda: OK):
                pass
