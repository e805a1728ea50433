"""client_host: which address a request is counted under behind proxies. X-Forwarded-For is
believed only from TRUSTED_PROXIES, the connection's and, walking from the right, each entry
an inner proxy wrote; an entry that is no address is nobody's; and an operator whose proxy
is not trusted is told so once."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request
from structlog.testing import capture_logs

from broker.webauth import _web, client_host

POD_NETWORK = (ipaddress.ip_network("10.42.0.0/16"),)  # TRUSTED_PROXIES
INGRESS = "10.42.0.17"  # the ingress controller, the connection's own address
BALANCER = "10.42.5.5"  # the load balancer in front of it, trusted too
USER, GUESSER = "192.0.2.44", "203.0.113.9"


def _request(peer: str, forwarded_for: str | None = None) -> Request:
    headers = [] if forwarded_for is None else [(b"x-forwarded-for", forwarded_for.encode())]
    return Request({"type": "http", "client": (peer, 50000), "headers": headers})


@pytest.fixture(autouse=True)
def _never_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_web, "_warned", set(), raising=False)


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        # Through both: the balancer appended the user's address, the ingress the balancer's.
        (f"{USER}, {BALANCER}", USER),
        (f"198.51.100.7, {USER}, {BALANCER}", USER),  # what the user wrote stays to the left
        # The reviewer's repro: a guesser who reaches the ingress directly. The ingress
        # appends the guesser's address, which is no trusted proxy's: that is the client,
        # not the address the guesser wrote to its left.
        (f"198.51.100.7, {GUESSER}", GUESSER),
        (f"{USER}, {GUESSER}", GUESSER),  # nor can it spend a user's budget
        # Fewer entries than hops, all trusted: the leftmost (as uvicorn), not the peer.
        (BALANCER, BALANCER),
    ],
)
def test_at_two_hops_each_inner_entry_must_be_a_trusted_proxy_or_it_is_the_client(
    forwarded_for: str, client: str
) -> None:
    assert client_host(_request(INGRESS, forwarded_for), 2, POD_NETWORK) == client


@pytest.mark.parametrize(
    ("hops", "forwarded_for"),
    [(1, "unknown"), (1, f"{USER}, unknown"), (1, "not-an-address:80"), (2, f"unknown, {BALANCER}"),
     (2, f"{USER}, unknown")],
)  # fmt: skip
def test_an_entry_that_is_no_address_is_the_proxys_own_not_one_budget_for_all_who_send_it(
    hops: int, forwarded_for: str
) -> None:
    """Else every client whose proxy writes ``unknown`` would share one budget, and one
    guesser sending it would spend everyone's."""
    assert client_host(_request(INGRESS, forwarded_for), hops, POD_NETWORK) == INGRESS


def test_an_entry_with_a_port_or_brackets_is_still_an_address() -> None:
    for written in ("192.0.2.44:5678", "[2001:db8::1]:443"):
        assert client_host(_request(INGRESS, written), 1, POD_NETWORK) == written
    trusted_with_port = f"{USER}, {BALANCER}:8443"
    assert client_host(_request(INGRESS, trusted_with_port), 2, POD_NETWORK) == USER


def test_a_proxy_not_trusted_is_warned_about_once_without_an_address() -> None:
    """An IPv6 pod network of public addresses (EKS, GKE) is in none of the private ranges
    the renders trust: every user is then the ingress's one address, which the operator
    learns from one warning per process, never naming who sent what."""
    ingress_v6 = "2600:1f18:aaaa::17"
    with capture_logs() as logs:
        for i in range(3):
            request = _request(ingress_v6, f"2001:db8:{i}::44")
            assert client_host(request, 1, POD_NETWORK) == ingress_v6
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("forwarded_for_not_believed", "warning")
    ]
    assert "TRUSTED_PROXIES" in logs[0]["why"]
    text = str(logs)
    assert "2600:1f18" not in text
    assert "2001:db8" not in text


@pytest.mark.parametrize(
    ("peer", "hops", "forwarded_for"),
    [(GUESSER, 0, USER), (GUESSER, 1, None), (INGRESS, 1, USER), (INGRESS, 2, None),
     (INGRESS, 2, f"{USER}, {BALANCER}")],
)  # fmt: skip
def test_nothing_is_warned_without_hops_without_the_header_or_from_a_trusted_proxy(
    peer: str, hops: int, forwarded_for: str | None
) -> None:
    with capture_logs() as logs:
        client_host(_request(peer, forwarded_for), hops, POD_NETWORK)
    assert logs == []


def test_an_outer_proxy_not_trusted_is_warned_about_once_too() -> None:
    """At two hops a load balancer left out of TRUSTED_PROXIES makes every user its address."""
    with capture_logs() as logs:
        for i in range(3):
            client_host(_request(INGRESS, f"192.0.2.{i}, 198.51.100.1"), 2, POD_NETWORK)
    assert [e["event"] for e in logs] == ["forwarded_for_not_believed"]
    assert "198.51.100" not in str(logs)


def test_the_untrusted_peer_warning_says_a_direct_caller_causes_it_too() -> None:
    """Anyone who reaches the port past the proxy with an X-Forwarded-For triggers it: the
    operator must check where it came from before trusting more addresses."""
    with capture_logs() as logs:
        client_host(_request(GUESSER, USER), 1, POD_NETWORK)
    assert "reaches the port directly, no proxy" in logs[0]["why"]
    assert "before trusting more" in logs[0]["why"]


@pytest.mark.parametrize(
    ("hops", "forwarded_for", "client"),
    [
        (2, USER, USER),  # FORWARDED_HOPS=2 behind one proxy: each user, not the proxy
        (2, GUESSER, GUESSER),  # or one who reached the ingress past the load balancer
        (3, f"{USER}, {BALANCER}", USER),  # the walk still skips the trusted entries
        (3, f"198.51.100.7, {GUESSER}", GUESSER),  # and stops at the first one not trusted
        (2, "unknown", INGRESS),  # an entry that is no address is still the proxy's own
    ],
)
def test_with_fewer_entries_than_hops_the_first_untrusted_from_the_right_is_the_client(
    hops: int, forwarded_for: str, client: str
) -> None:
    """Every entry was written by a trusted proxy, so the first not trusted is the client
    (as uvicorn); the peer would make every user the proxy's one address."""
    assert client_host(_request(INGRESS, forwarded_for), hops, POD_NETWORK) == client


def test_fewer_entries_than_hops_from_a_trusted_proxy_is_warned_once_without_an_address() -> None:
    with capture_logs() as logs:
        for i in range(3):
            client_host(_request(INGRESS, f"192.0.2.{i}"), 2, POD_NETWORK)
    assert [(e["event"], e["log_level"]) for e in logs] == [("forwarded_hops_mismatch", "warning")]
    assert "FORWARDED_HOPS is more than the proxies in front" in logs[0]["why"]
    assert "192.0.2" not in str(logs)
    assert INGRESS not in str(logs)


def test_a_trusted_proxys_entry_counted_as_the_client_is_warned_once_without_an_address() -> None:
    """FORWARDED_HOPS=1 behind a trusted load balancer and an ingress: every user is the load
    balancer's address, which nothing can tell apart from a user's but the operator."""
    with capture_logs() as logs:
        for i in range(3):
            request = _request(INGRESS, f"192.0.2.{i}, {BALANCER}")
            assert client_host(request, 1, POD_NETWORK) == BALANCER
    assert [(e["event"], e["log_level"]) for e in logs] == [("forwarded_hops_mismatch", "warning")]
    assert "entry counted as the client is in TRUSTED_PROXIES" in logs[0]["why"]
    assert "192.0.2" not in str(logs)
    assert BALANCER not in str(logs)


def test_a_trusted_client_entry_warning_advises_narrowing_trusted_proxies_before_raising_hops() -> (
    None
):
    """Behind one proxy, staff on a private range the renders trust trip it: raising
    FORWARDED_HOPS there would let them choose their own address, so narrowing comes first."""
    staff, private = "10.20.30.40", (ipaddress.ip_network("10.0.0.0/8"),)  # as the renders
    with capture_logs() as logs:
        assert client_host(_request(INGRESS, staff), 1, private) == staff
    [warning] = logs
    why = warning["why"]
    assert warning["event"] == "forwarded_hops_mismatch"
    assert "your users are on a private range that TRUSTED_PROXIES covers" in why
    assert "narrow TRUSTED_PROXIES" in why
    assert why.index("narrow TRUSTED_PROXIES") < why.index("Raise FORWARDED_HOPS")
    assert "choose the address counted as theirs" in why
    assert staff not in str(logs)
    assert INGRESS not in str(logs)
