"""Wrong bearer tokens are limited per client address and in all; the agency's records
systems are not, and nobody who reaches the port directly can name another's address."""

from __future__ import annotations

import asyncio
import ipaddress
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
PROXY = "10.0.0.2"
#: One trusted proxy in front, and every request coming through it.
BEHIND: dict[str, Any] = {
    "forwarded_hops": 1,
    "trusted_proxies": (ipaddress.ip_network("10.0.0.0/24"),),
    "peer": PROXY,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _post(gw: Gateway, address: str, headers: dict[str, str], body: Any = None) -> Any:
    """A request from ``address``, as the proxy in front (``BEHIND``) writes it."""
    return gw.client.post("/v1/events", content=json.dumps(body or gw.event()),
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


def test_an_ipv6_client_is_counted_by_its_48(agency_keys: FileKeyStore) -> None:
    """Any address of one /48 spends the same budget: a site is routinely given one."""
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2), **BEHIND) as gw:
        for address in ("2001:db8:1:2::1", "2001:db8:1:ffff::1"):
            assert _post(gw, address, WRONG).status_code == 401
        assert _post(gw, "2001:db8:1:abcd::1", AUTH).status_code == 429
        assert _post(gw, "2001:db8:2::1", AUTH).status_code == 202


def test_past_its_failures_an_address_gets_429_with_retry_after_even_with_the_right_token(
    agency_keys: FileKeyStore,
) -> None:
    """Its token is not compared (an answer that differed would let a guesser carry on),
    nothing is sent, and another address's right token is still served."""
    clock = Clock()
    limit = AuthLimit(per_client=3, total=100, window=60, clock=clock)
    with make_gateway(agency_keys, auth_limit=limit, **BEHIND) as gw:
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


def test_a_flood_refuses_unknown_addresses_but_not_the_records_systems_ranges(
    agency_keys: FileKeyStore,
) -> None:
    """Past the total, a right token is refused from an address neither in the records
    systems' ranges nor heard with it since the start; one that was heard is served."""
    spared = (ipaddress.ip_network("198.51.100.0/24"),)
    limit = AuthLimit(per_client=5, total=4, window=60, clock=Clock(), spared=spared)
    with make_gateway(agency_keys, auth_limit=limit, **BEHIND) as gw:
        assert _post(gw, "192.0.2.1", AUTH).status_code == 202  # heard since the start
        for n in range(4):
            assert _post(gw, f"203.0.113.{n}", WRONG).status_code == 401
        r = _post(gw, "203.0.113.200", AUTH)  # the right token, from an address never seen
        assert r.status_code == 429
        assert "many addresses" in r.json()["message"]
        assert _post(gw, "192.0.2.1", AUTH).status_code == 202
        assert _post(gw, "198.51.100.77", AUTH).status_code == 202  # never heard: spared
        limited = gw.registry.get_sample_value(
            "accord_gateway_auth_limited_total", {"limit": "all"}
        )
        assert limited == 1


def test_after_a_restart_a_records_systems_range_is_served_through_a_flood(
    agency_keys: FileKeyStore,
) -> None:
    """A new limit (a restart, a token rotation) knows nobody: the setting's ranges are
    served all the same, each failing attacker /48 still under its own limit."""
    spared = (ipaddress.ip_network("198.51.100.0/24"),)
    with make_gateway(agency_keys, auth_limit=AuthLimit(clock=Clock(), spared=spared),
                      **BEHIND) as gw:  # fmt: skip
        event = gw.event()
        for n in range(20):  # 20 attacker /48s, 5 each: none past its own limit
            for _ in range(5):
                assert _post(gw, f"2001:db8:{n:x}::1", WRONG, event).status_code == 401
        assert _post(gw, "2001:db8:ff::1", AUTH).status_code == 429
        assert _post(gw, "198.51.100.1", AUTH).status_code == 202


def test_a_records_systems_own_wrong_tokens_still_count_against_it() -> None:
    spared = (ipaddress.ip_network("198.51.100.0/24"),)
    limit = AuthLimit(per_client=2, total=100, clock=Clock(), spared=spared)
    limit.failed("198.51.100.1")
    limit.failed("198.51.100.1")
    limited = limit.refused("198.51.100.1")
    assert limited is not None
    assert limited.kind is LimitKind.CLIENT


def test_x_forwarded_for_from_a_peer_not_trusted_cannot_lock_out_a_records_system(
    agency_keys: FileKeyStore,
) -> None:
    """Someone reaching the port without the proxy writes a records system's address in the
    header: its failures are counted under its own address, and only that is refused."""
    limit = AuthLimit(clock=Clock())
    with make_gateway(agency_keys, auth_limit=limit, **BEHIND) as gw:
        assert _post(gw, "198.51.100.1", AUTH).status_code == 202  # via the proxy
    with make_gateway(agency_keys, auth_limit=limit, **{**BEHIND, "peer": "10.0.1.9"}) as gw:
        for _ in range(5):
            assert _post(gw, "198.51.100.1", WRONG).status_code == 401
        assert _post(gw, "198.51.100.2", WRONG).status_code == 429  # it is 10.0.1.9
    with make_gateway(agency_keys, auth_limit=limit, **BEHIND) as gw:
        assert _post(gw, "198.51.100.1", AUTH).status_code == 202


@pytest.mark.parametrize(
    ("outer", "believed"),
    [("10.0.0.9", True),  # through the load balancer, a trusted proxy too
     ("203.0.113.9", False)],  # past it, straight to the inner proxy
)  # fmt: skip
def test_at_two_hops_the_inner_proxys_entry_is_believed_only_for_a_trusted_outer_proxy(
    agency_keys: FileKeyStore, outer: str, believed: bool
) -> None:
    """One who reaches the inner proxy directly is counted as the address it appends, not
    as the one written to its left: naming a new address per try buys no new budget."""
    behind_two = {**BEHIND, "forwarded_hops": 2}
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2), **behind_two) as gw:
        for n in range(2):
            assert _post(gw, f"198.51.100.{n}, {outer}", WRONG).status_code == 401
        expected = 202 if believed else 429
        assert _post(gw, f"198.51.100.50, {outer}", AUTH).status_code == expected


def test_a_proxy_trusted_by_its_one_ipv6_address_does_not_vouch_for_its_neighbours(
    agency_keys: FileKeyStore,
) -> None:
    """``2001:db8::10`` alone is trusted, not its /64: ``2001:db8::11`` sending the header is
    counted under its own address, whatever it names."""
    trusted = {"forwarded_hops": 1, "trusted_proxies": (ipaddress.ip_network("2001:db8::10"),)}
    limit = AuthLimit(per_client=2)
    with make_gateway(agency_keys, auth_limit=limit, **trusted, peer="2001:db8::11") as gw:
        for n in range(2):
            assert _post(gw, f"198.51.100.{n}", WRONG).status_code == 401
        assert _post(gw, "198.51.100.50", AUTH).status_code == 429
    with make_gateway(agency_keys, auth_limit=limit, **trusted, peer="2001:db8::10") as gw:
        assert _post(gw, "198.51.100.50", AUTH).status_code == 202


@pytest.mark.parametrize(
    ("written", "same_as"),
    [("192.0.2.7:5678", "192.0.2.7"), ("[2001:db8::1]:443", "2001:db8::2"),
     ("[2001:db8::1]", "2001:db8::2")],
)  # fmt: skip
def test_an_address_written_with_a_port_or_brackets_is_the_address(
    agency_keys: FileKeyStore, written: str, same_as: str
) -> None:
    """Else each connection's port would be a fresh budget."""
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2), **BEHIND) as gw:
        assert _post(gw, written, WRONG).status_code == 401
        assert _post(gw, written.replace("5678", "5679"), WRONG).status_code == 401
        assert _post(gw, same_as, AUTH).status_code == 429


def test_an_entry_that_is_no_address_counts_as_the_proxys(agency_keys: FileKeyStore) -> None:
    with make_gateway(agency_keys, auth_limit=AuthLimit(per_client=2), **BEHIND) as gw:
        assert _post(gw, "unknown", WRONG).status_code == 401
        assert _post(gw, "not-an-address:80", WRONG).status_code == 401
        r = gw.client.post("/v1/events", content=b"{}", headers={**AUTH, "Content-Type":
                           "application/json"})  # fmt: skip  # no header: the proxy's own
        assert r.status_code == 429


def test_a_refusal_is_logged_and_counted_without_the_token_or_the_address(
    agency_keys: FileKeyStore,
) -> None:
    with (
        make_gateway(agency_keys, auth_limit=AuthLimit(per_client=1), **BEHIND) as gw,
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
    assert (cfg.trusted_proxies, cfg.records_systems) == ((), ())
    for bad in ({"auth_failures_per_client": 0}, {"auth_failures_total": 0},
                {"auth_window_seconds": 0}, {"forwarded_hops": -1}):  # fmt: skip
        with pytest.raises(ValidationError):
            GatewaySettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        cfg.auth_failures_per_client = 1_000  # type: ignore[misc]  # frozen


def test_forwarded_hops_needs_the_proxies_named_and_ranges_are_checked() -> None:
    """Hops with nobody trusted would count every caller as the proxy; a wrong entry is
    named by its position, never quoted."""
    with pytest.raises(ValidationError, match="empty while FORWARDED_HOPS is set"):
        GatewaySettings(forwarded_hops=1)
    cfg = GatewaySettings(forwarded_hops=1, trusted_proxies="10.0.0.0/8, 192.0.2.7",
                          records_systems=["2001:db8::/48"])  # type: ignore[arg-type]  # fmt: skip
    assert [str(n) for n in cfg.trusted_proxies or ()] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert [str(n) for n in cfg.records_systems or ()] == ["2001:db8::/48"]
    with pytest.raises(ValidationError, match="entry 2 is not an address") as info:
        GatewaySettings(records_systems="192.0.2.0/24, secret-host")  # type: ignore[arg-type]
    assert "secret-host" not in str(info.value).split("input_value")[0]


async def test_the_running_gateway_applies_its_settings_limits(
    tmp_path: Path, agency_keys: FileKeyStore
) -> None:
    """Each limit setting reaches the running gateway: the per-client count and window, the
    total, the records systems' ranges, and X-Forwarded-For believed from the proxy named."""
    gateway = GatewaySettings(port=0, token=SecretStr(TOKEN), auth_failures_per_client=1,
                              auth_failures_total=2, auth_window_seconds=120,
                              forwarded_hops=1, trusted_proxies=("127.0.0.1",),
                              records_systems=("198.51.100.0/24",))  # type: ignore[arg-type]  # fmt: skip
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

    def post(token: str, client: str) -> tuple[int, str | None]:
        request = urllib.request.Request(  # noqa: S310  # http, to the gateway under test
            f"{run.url}v1/events", data=json.dumps({"event_id": "e-1"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     "X-Forwarded-For": client},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Retry-After")

    wrong = "x" * len(TOKEN)
    try:
        assert await asyncio.to_thread(post, wrong, "192.0.2.1") == (401, None)
        status, wait = await asyncio.to_thread(post, TOKEN, "192.0.2.1")
        assert status == 429  # one failure is this address's all
        assert wait is not None
        assert 119 <= int(wait) <= 120
        # Another address as the proxy writes it: its own budget, so the header was read.
        assert await asyncio.to_thread(post, wrong, "192.0.2.2") == (401, None)
        # Two failures in all: an address never heard is refused, a records system is not.
        assert (await asyncio.to_thread(post, TOKEN, "192.0.2.3"))[0] == 429
        assert (await asyncio.to_thread(post, TOKEN, "198.51.100.9"))[0] != 429
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
