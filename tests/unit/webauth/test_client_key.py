"""client_key: the address a client's failures are kept under, however a proxy wrote it."""

from __future__ import annotations

import pytest

from broker.webauth import client_key


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("203.0.113.7:5678", "203.0.113.7"),
        ("[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
        ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
        ("2001:db8:1:2::8080", "2001:db8:1:2::/64"),  # a bare IPv6 address has no port
        ("proxy.example:80", "proxy.example:80"),  # no address: kept as it is
    ],
)
def test_a_port_and_brackets_are_not_part_of_the_address(written: str, key: str) -> None:
    """Else each connection's port would be a new client with a fresh budget."""
    assert client_key(written) == key
