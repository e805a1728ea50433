"""Sign-in throttling without lockout, and the known-device cookies that get officers past it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.webauth._devices import DeviceCookies
from broker.webauth._throttle import SignInThrottle, client_key
from tests.unit.console.conftest import Clock

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T)


def throttle(clock: Clock, **kw: object) -> SignInThrottle:
    options: dict[str, object] = {
        "client_failures": 10, "account_failures": 3, "window": timedelta(minutes=15),
        "max_delay": timedelta(minutes=5), "clock": clock,
    }  # fmt: skip
    options.update(kw)
    return SignInThrottle(**options)  # type: ignore[arg-type]  # test overrides


def hammer(t: SignInThrottle, name: str, times: int, *, clients: int = 100) -> None:
    for i in range(times):
        t.attempt(name, f"198.51.100.{i % clients}")


def test_failures_from_other_clients_never_keep_a_known_device_out(clock: Clock) -> None:
    t = throttle(clock)
    hammer(t, "ig.jo", 50)
    assert t.attempt("ig.jo", "203.0.113.7").refused == "account"
    attempt = t.attempt("ig.jo", "192.0.2.1", device="officers-laptop")
    assert attempt.refused is None
    assert attempt.device == "officers-laptop"


def test_an_account_hammered_from_many_addresses_makes_unknown_clients_wait_but_never_locks(
    clock: Clock,
) -> None:
    t = throttle(clock, account_ceiling=3, window=timedelta(hours=1))
    hammer(t, "ig.jo", 3)  # up to the ceiling, from three addresses
    for wait in (1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300):  # capped at max_delay (5 min)
        assert t.attempt("ig.jo", "203.0.113.7").refused == "account"
        clock.advance(seconds=wait - 0.5)
        assert t.attempt("ig.jo", "203.0.113.7").refused == "account"
        clock.advance(seconds=0.5)
        assert t.attempt("ig.jo", f"203.0.113.{wait % 250}").refused is None


def test_one_address_hammering_a_name_never_keeps_the_officers_new_browser_out(
    clock: Clock,
) -> None:
    """It guesses the moment each of its waits ends, for hours, within its own budget; the
    officer signs in from a browser the console has not seen (new, or after a reset)."""
    t = throttle(clock)
    attacker, officer = "198.51.100.66", "203.0.113.7"
    refused = 0
    for minute in range(6 * 60):
        refused += t.attempt("ig.jo", attacker).refused is not None
        if minute % 25 == 0:
            signing_in = t.attempt("ig.jo", officer)
            assert signing_in.refused is None
            t.succeeded(signing_in)
        clock.advance(minutes=1)
    assert refused > 0.75 * 6 * 60  # the guesser is slowed, itself


def test_an_account_left_alone_for_the_window_is_forgotten(clock: Clock) -> None:
    t = throttle(clock)
    hammer(t, "ig.jo", 3)
    clock.advance(minutes=15)
    assert [t.attempt("ig.jo", "203.0.113.7").refused for _ in range(4)] == [None] * 3 + ["account"]


def test_one_client_is_slowed_across_many_names(clock: Clock) -> None:
    t = throttle(clock, client_failures=4)
    for i in range(4):
        assert t.attempt(f"ig.user{i}", "203.0.113.7").refused is None
    assert t.attempt("ig.someone-new", "203.0.113.7").refused == "client"
    assert t.attempt("ig.someone-new", "203.0.113.8").refused is None  # another client
    clock.advance(minutes=15)  # the window slides past the failures
    assert t.attempt("ig.someone-new", "203.0.113.7").refused is None


def test_a_refused_attempt_is_charged_to_nothing(clock: Clock) -> None:
    t = throttle(clock, client_failures=2)
    t.attempt("ig.a", "203.0.113.7")
    t.attempt("ig.b", "203.0.113.7")
    for _ in range(20):
        assert t.attempt("ig.c", "203.0.113.7").refused == "client"
    clock.advance(minutes=15)
    assert t.attempt("ig.c", "203.0.113.7").refused is None
    assert t.attempt("ig.c", "203.0.113.9").refused is None  # ig.c has only that one failure


def test_attempts_are_charged_before_the_check_so_concurrent_guesses_share_the_budget(
    clock: Clock,
) -> None:
    t = throttle(clock)
    refused = [t.attempt("ig.jo", "198.51.100.1").refused for _ in range(5)]
    assert refused == [None, None, None, "account", "account"]


def test_a_success_forgives_what_it_was_charged_to(clock: Clock) -> None:
    t = throttle(clock)
    hammer(t, "ig.jo", 2)
    t.succeeded(t.attempt("ig.jo", "203.0.113.7"))
    assert [t.attempt("ig.jo", "203.0.113.7").refused for _ in range(4)] == [None] * 3 + ["account"]


def test_a_known_device_that_spends_its_own_budget_counts_as_unknown(clock: Clock) -> None:
    """A stolen device cookie is worth a few guesses, not a way around the throttle."""
    t = throttle(clock, account_ceiling=3)
    hammer(t, "ig.jo", 10)
    attempts = [t.attempt("ig.jo", "192.0.2.1", device="stolen") for _ in range(4)]
    assert [a.device for a in attempts] == ["stolen"] * 3 + [None]
    assert attempts[-1].refused == "account"
    clock.advance(minutes=15)
    assert t.attempt("ig.jo", "192.0.2.1", device="stolen").device == "stolen"


def test_names_are_tracked_the_same_whether_or_not_an_account_exists(clock: Clock) -> None:
    """The throttle never asks which accounts exist, so its answers cannot tell."""
    t = throttle(clock, account_ceiling=3)
    for name in ("ig.jo", "ig.nobody"):
        hammer(t, name, 3)
    assert t.attempt("ig.jo", "203.0.113.7").refused == "account"
    assert t.attempt("ig.nobody", "203.0.113.7").refused == "account"


def test_memory_is_bounded_however_many_names_and_clients_are_tried(clock: Clock) -> None:
    t = throttle(clock, capacity=100)
    for i in range(5_000):
        t.attempt(f"name{i}", f"client{i}", device=f"device{i}" if i % 2 else None)
    assert len(t._accounts) == len(t._clients) == len(t._devices) == 100


def test_names_that_cannot_be_accounts_share_one_entry(clock: Clock) -> None:
    t = throttle(clock)
    for i in range(50):
        t.attempt(f"NOT A NAME {i}" * 100, f"198.51.100.{i}")
    assert len(t._accounts) == 1


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same /64: one budget
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, ""),
    ],
)
def test_a_clients_budget_is_kept_per_ipv4_address_or_ipv6_slash_64(
    host: str | None, key: str
) -> None:
    assert client_key(host) == key


def cookies(clock: Clock, key: bytes = b"k" * 32) -> DeviceCookies:
    return DeviceCookies(key, lifetime=timedelta(days=90), clock=clock)


def test_a_device_cookie_proves_this_account_and_credential_only(clock: Clock) -> None:
    devices = cookies(clock)
    token = devices.issue("ig.jo", "stamp-1")
    device = devices.device(token, "ig.jo", "stamp-1")
    assert device is not None
    assert token.startswith(device + ".")
    assert "ig.jo" not in token
    assert devices.device(token, "ig.sam", "stamp-1") is None  # another account
    assert devices.device(token, "ig.jo", "stamp-2") is None  # password reset since
    assert devices.device(token, "ig.jo", None) is None  # account removed
    assert cookies(clock, b"x" * 32).device(token, "ig.jo", "stamp-1") is None  # another key


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "other-device." + t.split(".", 1)[1],
        lambda t: t.split(".")[0] + ".99999999999." + t.split(".")[2],
        lambda t: t + ".x",
        lambda t: t.replace(".", "", 1),
        lambda t: t.split(".")[0] + ".\u0661\u0662." + t.split(".")[2],  # Arabic-Indic digits
        lambda t: t + "é",
        lambda _: "",
    ],
)
def test_a_forged_or_damaged_device_cookie_is_ignored(clock: Clock, forge: object) -> None:
    devices = cookies(clock)
    token = devices.issue("ig.jo", "stamp-1")
    assert devices.device(forge(token), "ig.jo", "stamp-1") is None  # type: ignore[operator]


def test_a_device_cookie_expires(clock: Clock) -> None:
    devices = cookies(clock)
    token = devices.issue("ig.jo", "stamp-1")
    clock.advance(days=89)
    assert devices.device(token, "ig.jo", "stamp-1") is not None
    clock.advance(days=1)
    assert devices.device(token, "ig.jo", "stamp-1") is None
