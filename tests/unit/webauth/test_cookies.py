"""Each app's cookies are named its own (browsers keep cookies by host, not port), and with
Secure on they carry the prefix that lets no sibling host set or shadow them."""

from __future__ import annotations

import re

from broker.webauth import CookieNames, cookie_names

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: a valid cookie name


def test_the_console_and_each_desk_have_names_of_their_own() -> None:
    names = [
        cookie_names("console", secure=False),
        cookie_names("desk", "tipton-hub", secure=False),
        cookie_names("desk", "wednesbury-hub", secure=False),
    ]
    assert names[0] == CookieNames("accord_console_session", "accord_console_device")
    assert names[1] == CookieNames(
        "accord_desk_tipton-hub_session", "accord_desk_tipton-hub_device"
    )
    every = [n for pair in names for n in (pair.session, pair.device)]
    assert len(set(every)) == len(every)


def test_secure_names_carry_host_for_the_session_and_secure_for_the_device() -> None:
    names = cookie_names("desk", "tipton-hub", secure=True)
    assert names.session == "__Host-accord_desk_tipton-hub_session"
    assert names.device == "__Secure-accord_desk_tipton-hub_device"  # Path=/login: not __Host-


def test_any_party_id_maps_to_a_valid_token_and_distinct_ids_to_distinct_names() -> None:
    ids = ["a_b", "a b", "a;b", "a=b", "a\u00e9b", "a-b", "ab"]
    names = [cookie_names("desk", party, secure=False).session for party in ids]
    assert all(TOKEN.fullmatch(n) for n in names), names
    assert len(set(names)) == len(ids)
