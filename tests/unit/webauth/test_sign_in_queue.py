"""Past a few sign-in checks waiting for Argon2, a further attempt is refused at once, before
its name is looked at (so its speed tells nobody whether the account exists), with a page
saying so (503); once the queue drains, a right one signs in."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.requests import Request

from broker.config import SignInSettings
from broker.webauth import Guard

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


class SlowUsers:
    """One account, ``ig.officer``/``right``, whose checks take until ``release`` is set:
    the queue stays full for as long as the test needs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.looked_at: list[str] = []
        self.checked: list[str] = []

    def stamp(self, name: str) -> str | None:
        self.looked_at.append(name)
        return "stamp" if name == "ig.officer" else None

    def sign_in(self, name: str, password: str, *_: Any, **__: Any) -> str | None:
        self.checked.append(name)
        self.release.wait(10)
        return "stamp" if name == "ig.officer" and password == "right" else None

    def spend(self, *_: Any, **__: Any) -> None:
        self.release.wait(10)


def sign_in_request(address: str = "192.0.2.7") -> Request:
    return Request({"type": "http", "method": "POST", "path": "/login", "headers": [],
                    "client": (address, 5000)})  # fmt: skip


def form(name: str, password: str) -> dict[str, str]:
    return {"username": name, "password": password, "code": "123456"}


async def test_a_full_sign_in_queue_refuses_at_once_without_looking_at_the_name() -> None:
    users = SlowUsers()
    guard = Guard(
        SignInSettings(sign_in_checks_waiting=1, sign_in_failures_per_client=1000),
        users,  # type: ignore[arg-type]  # the part of UserFile a sign-in check uses
        b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW,
    )  # fmt: skip
    # Two checks running (the most at once) and one waiting: the queue is full.
    queued = [
        asyncio.create_task(
            guard.check(sign_in_request(f"198.51.100.{i}"), form(f"ig.guess{i}", "wrong"))
        )
        for i in range(3)
    ]
    for _ in range(500):
        if len(users.looked_at) == 3:
            break
        await asyncio.sleep(0.01)
    users.looked_at.clear()
    for name in ("ig.officer", "ig.nobody"):  # an account and no account: the same answer
        start = time.monotonic()
        check = await guard.check(sign_in_request(), form(name, "right"))
        assert time.monotonic() - start < 0.5  # not after the three ahead of it
        assert check.busy
        assert not check.ok
        assert guard.failed_status(check) == 503
        assert "too many sign-ins at once" in guard.failed(check)
    assert users.looked_at == []  # the name was never looked at: nothing to time
    users.release.set()
    assert not any(c.ok or c.busy for c in await asyncio.gather(*queued))
    check = await guard.check(sign_in_request(), form("ig.officer", "right"))
    assert check.ok
    assert users.checked.count("ig.officer") == 1  # the refused ones were never checked


@pytest.mark.parametrize("per_address", [2, 3])
async def test_one_address_holds_at_most_its_places_in_the_sign_in_queue(
    per_address: int,
) -> None:
    """One more attempt from an address with SIGN_IN_CHECKS_PER_ADDRESS waiting is refused
    at once, unchecked, while one from elsewhere still queues."""
    users = SlowUsers()
    guard = Guard(
        SignInSettings(sign_in_checks_waiting=8, sign_in_failures_per_client=1000,
                       sign_in_checks_per_address=per_address),
        users,  # type: ignore[arg-type]
        b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW,
    )  # fmt: skip
    held = [
        asyncio.create_task(guard.check(sign_in_request("198.51.100.9"), form("ig.a", "x")))
        for _ in range(per_address)
    ]
    for _ in range(500):
        if len(users.looked_at) == per_address:
            break
        await asyncio.sleep(0.01)
    users.looked_at.clear()
    check = await guard.check(sign_in_request("198.51.100.9"), form("ig.officer", "right"))
    assert check.busy
    assert users.looked_at == []
    officer = asyncio.create_task(guard.check(sign_in_request(), form("ig.officer", "right")))
    users.release.set()
    assert (await officer).ok
    await asyncio.gather(*held)


async def test_officers_behind_one_address_sign_in_at_the_same_moment() -> None:
    """Three officers of one office NAT (or behind a load balancer that replaces addresses),
    each with the right password: none is refused as busy by default."""
    users = SlowUsers()
    guard = Guard(
        SignInSettings(),
        users,  # type: ignore[arg-type]
        b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW,
    )  # fmt: skip
    officers = [
        asyncio.create_task(
            guard.check(sign_in_request("203.0.113.7"), form("ig.officer", "right"))
        )
        for _ in range(3)
    ]
    for _ in range(500):
        if len(users.looked_at) == 3:
            break
        await asyncio.sleep(0.01)
    users.release.set()
    checks = await asyncio.gather(*officers)
    assert not any(c.busy for c in checks)
    assert all(c.ok for c in checks)


class TimedUsers:
    """Checks that take 0.1 s each, counted."""

    def __init__(self) -> None:
        self.hashed = 0

    def stamp(self, name: str) -> str | None:
        return "stamp" if name == "ig.officer" else None

    def sign_in(self, name: str, password: str, *_: Any, **__: Any) -> str | None:
        self.hashed += 1
        time.sleep(0.1)
        return "stamp" if name == "ig.officer" and password == "right" else None

    def spend(self, *_: Any, **__: Any) -> None:
        self.hashed += 1
        time.sleep(0.1)


async def test_an_attempt_the_throttle_refused_waits_as_long_as_a_check_without_hashing() -> None:
    users = TimedUsers()
    guard = Guard(
        SignInSettings(sign_in_failures_per_client=1),
        users,  # type: ignore[arg-type]
        b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW,
    )  # fmt: skip
    for _ in range(2):  # the first is checked; the second the throttle refuses, and times
        await guard.check(sign_in_request("198.51.100.9"), form("ig.officer", "wrong"))
    hashed = users.hashed
    start = time.monotonic()
    check = await guard.check(sign_in_request("198.51.100.9"), form("ig.officer", "wrong"))
    took = time.monotonic() - start
    assert check.refused == "client"
    assert users.hashed == hashed  # no turn taken from an officer's check
    assert 0.07 < took < 0.5  # as long as a check


async def test_an_attempt_the_throttle_refused_waits_behind_the_queue_as_a_checked_one() -> None:
    """With six checks queued (three turns of 0.1 s ahead), a refused attempt answers no
    sooner than a checked one would: its speed does not tell that it was refused."""
    users = TimedUsers()
    guard = Guard(
        SignInSettings(sign_in_failures_per_client=1),
        users,  # type: ignore[arg-type]
        b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW,
    )  # fmt: skip
    await guard.check(sign_in_request("198.51.100.9"), form("ig.officer", "wrong"))  # timed
    queued = [
        asyncio.create_task(
            guard.check(sign_in_request(f"203.0.113.{i}"), form(f"ig.guess{i}", "x"))
        )
        for i in range(6)
    ]
    await asyncio.sleep(0.02)
    start = time.monotonic()
    check = await guard.check(sign_in_request("198.51.100.9"), form("ig.officer", "wrong"))
    took = time.monotonic() - start
    await asyncio.gather(*queued)
    assert check.refused == "client"
    assert took > 0.3  # a checked one: three turns ahead and its own, 0.4 s


async def test_a_burst_from_one_address_is_answered_alike_whether_the_throttle_hides_a_name() -> (
    None
):
    """A refused attempt held no place in the gate: six at once from one address were all
    answered after one check's time, none busy, where six checked ones queued two at a time
    and two were busy: the burst told a name others' failures had throttled (review r45f)."""
    users = TimedUsers()
    settings = SignInSettings(
        sign_in_failures_per_account=100, sign_in_failures_per_account_total=5,
        sign_in_failures_per_client=1000,
    )  # fmt: skip
    guard = Guard(settings, users, b"k" * 32, app="desk", party="cog-tipton", clock=lambda: NOW)
    await guard.check(sign_in_request("203.0.113.1"), form("ig.other", "wrong"))  # timed once

    async def burst(name: str) -> list[tuple[bool, float]]:
        start = time.monotonic()

        async def one() -> tuple[bool, float]:
            c = await guard.check(sign_in_request("198.51.100.9"), form(name, "wrong"))
            return c.busy, time.monotonic() - start

        return sorted(await asyncio.gather(*(one() for _ in range(6))))

    checked = await burst("ig.fresh")
    for i in range(8):  # others' failures: the throttle now hides ig.officer's refusals
        await guard.check(sign_in_request(f"203.0.113.{10 + i}"), form("ig.officer", "wrong"))
    refused = await burst("ig.officer")
    assert [busy for busy, _ in refused] == [busy for busy, _ in checked]
    assert sum(busy for busy, _ in checked) == 2
    slowest = [at for busy, at in checked if not busy][-1]
    assert [at for busy, at in refused if not busy][-1] > slowest / 2
