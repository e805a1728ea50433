"""The sign-in check both web apps make: one place for the part an attacker probes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request

from broker.errors import SecondFactorUnreadable
from broker.events import holds_nhs_or_telephone_number
from broker.webauth._devices import DeviceCookies
from broker.webauth._throttle import SignInThrottle, client_key
from broker.webauth._users import USERNAME, UserFile
from broker.webauth._web import client_host, form_field

if TYPE_CHECKING:
    from broker.config import Network

__all__ = ["BUSY", "HashGate", "SignInCheck", "check_sign_in"]


BUSY = "busy"  # SignInCheck.refused: too many checks waiting, this one not made


class HashGate:
    """The Argon2 checks one app makes at once (``at_once``: each takes ~64 MiB and a core
    for a moment) and how many may wait their turn (``waiting``), of which one client (its
    network address's key) holds at most ``per_client``. Past either, :meth:`full`: a flood
    of guesses would otherwise queue without end, and an officer behind it wait."""

    def __init__(self, *, at_once: int = 2, waiting: int = 8, per_client: int = 4) -> None:
        self._running = asyncio.Semaphore(at_once)
        self._at_once = at_once
        self._bound = at_once + waiting
        self._per_client = per_client
        self._in = 0  # running and waiting
        self._by_client: dict[str, int] = {}
        # How long a check itself took lately (its wait for a turn not included). None until
        # one was timed.
        self.check_time: float | None = None

    def full(self, client: str) -> bool:
        return self._in >= self._bound or self._by_client.get(client, 0) >= self._per_client

    @contextlib.contextmanager
    def counted(self, client: str) -> Iterator[None]:
        """``client``'s place in the gate, held as a check's is: a refused attempt holds one
        while it waits as a check would (without a turn at hashing), so that a burst from
        one address is queued and answered busy alike, refused or not (review r45f)."""
        self._in += 1
        self._by_client[client] = self._by_client.get(client, 0) + 1
        try:
            yield
        finally:
            self._in -= 1
            left = self._by_client[client] - 1
            if left:
                self._by_client[client] = left
            else:
                del self._by_client[client]  # the map holds only clients in the gate now

    @contextlib.asynccontextmanager
    async def turn(self, client: str) -> AsyncIterator[None]:
        with self.counted(client):
            async with self._running:
                start = time.monotonic()
                yield
                took = time.monotonic() - start
                self.check_time = (
                    took if self.check_time is None else 0.8 * self.check_time + 0.2 * took
                )

    def wait(self) -> float | None:
        """How long a check arriving now would take, its wait behind those in the gate
        included: what a check the throttle refused waits without taking a turn, so that
        its answer comes when a checked one's would, the queue full or empty (a past
        average would come early behind a full queue, and tell a refused name by it)."""
        if self.check_time is None:
            return None
        return (self._in // self._at_once + 1) * self.check_time


@dataclass(frozen=True, slots=True)
class SignInCheck:
    """What a posted sign-in form came to. ``name`` is only meaningful when ``ok`` or
    ``unreadable``; ``refused`` names what the throttle refused on (``"account"``,
    ``"client"``), if it did, or ``BUSY``: too many checks were waiting, none was made.
    ``unreadable``: the password was right, but the account's sealed second factor does not
    open, so it cannot be checked (``users_file`` says which file)."""

    ok: bool
    name: str
    refused: str | None
    known_device: bool
    unreadable: bool = False
    users_file: str | None = None
    # The account's stamp as the sign-in's own write left it (when ``ok``): what the session
    # is to hold (:meth:`UserFile.sign_in`), never one read again later.
    stamp: str | None = None

    @property
    def busy(self) -> bool:
        """Refused unchecked: too many sign-in checks were waiting."""
        return self.refused == BUSY

    @property
    def logged_name(self) -> str:
        """The name for a log line: an account made before add-user refused names holding an
        NHS or telephone number may still have one, and a log must not point at a person."""
        return (
            "(withheld: not a staff id)" if holds_nhs_or_telephone_number(self.name) else self.name
        )


async def check_sign_in(
    request: Request,
    form: Any,
    *,
    users: UserFile,
    devices: DeviceCookies,
    throttle: SignInThrottle,
    hashing: HashGate,
    now: datetime,
    hops: int = 0,
    trusted: Sequence[Network] = (),
    device_cookie: str,
) -> SignInCheck:
    """Check a posted user name, password and code: every answer after the same work.

    Every answer, refused by the throttle or not, takes as long as one Argon2 check: a
    refusal that came back at once would say "this name is being throttled" by its speed
    alone. A refused one sleeps as long as a check arriving now would take, its wait behind
    those queued included (the first ever makes one), rather than take a turn an officer's
    check could have. A success clears the throttle's count
    for the account. ``hops``, ``trusted``: as :func:`client_host`;
    ``device_cookie``: the app's known-device cookie's name.

    With ``hashing`` full, or holding its share for this client's address already, the
    answer is ``BUSY`` at once, before the form is read: the same for every name, so its
    speed says nothing of an account; charged to no budget.
    """
    client = client_key(client_host(request, hops, trusted))
    if hashing.full(client):
        return SignInCheck(False, "", BUSY, False)
    name = (form_field(form, "username") or "").strip().lower()
    password = form_field(form, "password") or ""
    code = form_field(form, "code")
    stamp = users.stamp(name) if USERNAME.fullmatch(name) else None
    device = devices.device(request.cookies.get(device_cookie), name, stamp)
    attempt = throttle.attempt(name, client, device)
    wait = hashing.wait()
    if attempt.refused is not None and wait is not None:
        with hashing.counted(client):
            await asyncio.sleep(wait)
        return SignInCheck(False, name, attempt.refused, device is not None)
    async with hashing.turn(client):
        if attempt.refused is None:
            try:
                signed = await asyncio.to_thread(users.sign_in, name, password, code, now=now)
            except SecondFactorUnreadable as exc:
                # Raised only after the right password: an answer of its own, for the app to
                # log and show, rather than an error page that says nothing.
                return SignInCheck(
                    False, name, None, device is not None, unreadable=True, users_file=exc.path
                )
        else:
            await asyncio.to_thread(users.spend, password, code, now=now)
            signed = None
    if signed is not None:
        throttle.succeeded(attempt)
    return SignInCheck(signed is not None, name, attempt.refused, device is not None, stamp=signed)
