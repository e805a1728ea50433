"""Wrong bearer tokens are limited per client address and in all; correct callers are not."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from broker.config import GatewaySettings, KafkaSettings, Settings
from broker.gateway import AuthLimit, GatewayRun, run_gateway
from broker.gateway._limit import KNOWN_FOR, LimitKind
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from tests.unit.gateway.conftest import AUTH, TOKEN, Gateway, make_gateway
from tests.unit.gateway.test_serve import Confirming

WRONG = {"Authorization": "Bearer " + "w" * len(TOKEN)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _post(gw: Gateway, address: str, headers: dict[str, str]) -> Any:
    """A request from ``address`` (the gateway is told one proxy stands in front)."""
    return gw.client.post("/v1/events", content=json.dumps(gw.event()),
                          headers={"Content-Type": "application/json",
                                   "X-Forwarded-For": address, **headers})  # fmt: skip


def test_an_address_past_its_failures_is_refused_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    limit = AuthLimit(per_client=3, total=100, window=60, clock=clock)
    for _ in range(3):
        assert limit.refused("192.0.2.7") is None
        limit.failed("192.0.2.7")
        clock.now += 10
    limited = limit.refused("192.0.2.7")
    assert limited is not None
    assert limited.kind is LimitKind.CLIENT
    assert limited.retry_after == 30  # the first failure, at 1000, leaves at 1060; now 1030
    assert limit.refused("192.0.2.8") is None  # another address is not touched
    clock.now = 1060
    assert limit.refused("192.0.2.7") is None


def test_a_right_token_does_not_forgive_an_addresss_wrong_ones() -> None:
    clock = Clock()
    limit = AuthLimit(per_client=2, total=100, window=60, clock=clock)
    limit.failed("192.0.2.7")
    limit.succeeded("192.0.2.7")
    limit.failed("192.0.2.7")
    assert limit.refused("192.0.2.7") is not None


def test_past_the_total_only_addresses_that_used_the_right_token_lately_are_heard() -> None:
    clock = Clock()
    limit = AuthLimit(per_client=5, total=10, window=60, clock=clock)
    limit.succeeded("198.51.100.1")  # a records system of the agency's
    for n in range(10):  # ten addresses, one failure each: none past its own limit
        limit.failed(f"203.0.113.{n}")
    limited = limit.refused("203.0.113.99")
    assert limited is not None
    assert limited.kind is LimitKind.ALL
    assert limited.retry_after == 60
    assert limit.refused("198.51.100.1") is None
    clock.now += KNOWN_FOR  # known for a day; then as any other address
    for n in range(10):
        limit.failed(f"203.0.113.{n}")
    assert limit.refused("198.51.100.1") is not None


def test_an_ipv6_client_is_counted_by_its_64(agency_keys: FileKeyStore) -> None:
    """Any address of one /64 spends the same budget: a host is given 2^64 of them."""
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2), forwarded_hops=1) as gw:
        for address in ("2001:db8:1:2::1", "2001:db8:1:2::ffff"):
            assert _post(gw, address, WRONG).status_code == 401
        assert _post(gw, "2001:db8:1:2::abcd", AUTH).status_code == 429
        assert _post(gw, "2001:db8:1:3::1", AUTH).status_code == 202


def test_past_its_failures_an_address_gets_429_with_retry_after_even_with_the_right_token(
    agency_keys: FileKeyStore,
) -> None:
    """Its token is not compared (an answer that differed would let a guesser carry on),
    nothing is sent, and another address's right token is still served."""
    clock = Clock()
    limit = AuthLimit(per_client=3, total=100, window=60, clock=clock)
    with make_gateway(agency_keys, auth_limit=limit, forwarded_hops=1) as gw:
        for _ in range(3):
            assert _post(gw, "192.0.2.7", WRONG).status_code == 401
        r = _post(gw, "192.0.2.7", AUTH)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "60"
        assert r.json()["error"] == "too_many_failures"
        assert gw.kafka.sent == []
        assert _post(gw, "192.0.2.8", AUTH).status_code == 202
        clock.now += 60
        assert _post(gw, "192.0.2.7", AUTH).status_code == 202
        assert gw.count("event", "too_many_failures") == 1
        assert gw.count("event", "unauthorised") == 3
        limited = gw.registry.get_sample_value(
            "accord_gateway_auth_limited_total", {"limit": "client"}
        )
        assert limited == 1


def test_without_a_proxy_declared_x_forwarded_for_is_not_believed(
    agency_keys: FileKeyStore,
) -> None:
    """A guesser cannot buy itself new budgets by writing another address in the header."""
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2)) as gw:
        for n in range(2):
            assert _post(gw, f"192.0.2.{n}", WRONG).status_code == 401
        assert _post(gw, "192.0.2.50", WRONG).status_code == 429


def test_a_flood_from_many_addresses_leaves_the_agencys_records_system_served(
    agency_keys: FileKeyStore,
) -> None:
    limit = AuthLimit(per_client=5, total=4, window=60, clock=Clock())
    with make_gateway(agency_keys, auth_limit=limit, forwarded_hops=1) as gw:
        assert _post(gw, "198.51.100.1", AUTH).status_code == 202
        for n in range(4):
            assert _post(gw, f"203.0.113.{n}", WRONG).status_code == 401
        r = _post(gw, "203.0.113.200", AUTH)  # the right token, from an address never seen
        assert r.status_code == 429
        assert "many addresses" in r.json()["message"]
        assert _post(gw, "198.51.100.1", AUTH).status_code == 202
        limited = gw.registry.get_sample_value(
            "accord_gateway_auth_limited_total", {"limit": "all"}
        )
        assert limited == 1


def test_a_refusal_is_logged_and_counted_without_the_token_or_the_address(
    agency_keys: FileKeyStore,
) -> None:
    with (
        make_gateway(agency_keys, auth_limit=AuthLimit(per_client=1), forwarded_hops=1) as gw,
        capture_logs() as logs,
    ):
        _post(gw, "192.0.2.77", {"Authorization": "Bearer guess-" + TOKEN})
        assert _post(gw, "192.0.2.77", AUTH).status_code == 429
        text = json.dumps(logs, default=str) + generate_latest(gw.registry).decode()
    assert [e for e in logs if e["event"] == "gateway_auth_limited"] == [
        {"event": "gateway_auth_limited", "log_level": "warning", "limit": "client",
         "retry_after": 60}
    ]  # fmt: skip
    for value in (TOKEN, "guess-", "192.0.2.77"):
        assert value not in text


def test_the_probes_are_never_limited(agency_keys: FileKeyStore) -> None:
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=1)) as gw:
        gw.client.post("/v1/events", headers=WRONG)
        assert gw.client.get("/v1/events", headers=AUTH).status_code == 429
        assert gw.client.get("/healthz").status_code == 200
        assert gw.client.get("/readyz").status_code == 200


def test_the_limits_default_to_a_few_failures_a_minute_and_must_be_positive() -> None:
    cfg = GatewaySettings()
    assert (cfg.auth_failures_per_client, cfg.auth_failures_total) == (5, 100)
    assert (cfg.auth_window_seconds, cfg.forwarded_hops) == (60, 0)
    for bad in ({"auth_failures_per_client": 0}, {"auth_failures_total": 0},
                {"auth_window_seconds": 0}, {"forwarded_hops": -1}):  # fmt: skip
        with pytest.raises(ValidationError):
            GatewaySettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        cfg.auth_failures_per_client = 1_000  # type: ignore[misc]  # frozen


async def test_the_running_gateway_applies_its_settings_limits(
    tmp_path: Path, agency_keys: FileKeyStore
) -> None:
    gateway = GatewaySettings(port=0, token=SecretStr(TOKEN), auth_failures_per_client=1,
                              auth_window_seconds=120)  # fmt: skip
    settings = Settings(home=tmp_path, gateway=gateway)
    kafka = KafkaClients(KafkaSettings(security_protocol="PLAINTEXT"))
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(settings, "wmp", agency_keys, kafka,
                                           publisher=Confirming(), started=runs.append,
                                           stop=stop))  # fmt: skip
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    [run] = runs

    def post(token: str) -> tuple[int, str | None]:
        request = urllib.request.Request(  # noqa: S310  # http, to the gateway under test
            f"{run.url}v1/events", data=json.dumps({"event_id": "e-1"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After")

    try:
        assert await asyncio.to_thread(post, "x" * len(TOKEN)) == (401, None)
        status, wait = await asyncio.to_thread(post, TOKEN)
        assert status == 429
        assert wait is not None
        assert 119 <= int(wait) <= 120
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
