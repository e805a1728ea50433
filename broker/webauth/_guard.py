"""One web app's sign-in state: sessions, throttle, known devices, cookies, the sign-in check.

The console and the desk each hold one ``Guard``: the same rules for who is signed in and how
a session's and a device's cookies are set, written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from broker.config import SignInSettings
from broker.webauth._devices import DEVICE_COOKIE, DeviceCookies
from broker.webauth._sessions import Session, SessionStore
from broker.webauth._signin import SignInCheck, check_sign_in
from broker.webauth._throttle import SignInThrottle
from broker.webauth._users import UserFile
from broker.webauth._web import loopback

__all__ = ["Guard"]


class Guard:
    """Sessions (cookie ``cookie``), sign-in throttling and known-device cookies (keyed by
    ``device_key``: :func:`broker.webauth.device_key`) for one app."""

    def __init__(
        self,
        cfg: SignInSettings,
        users: UserFile,
        device_key: bytes,
        *,
        cookie: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.users = users
        self.cookie = cookie
        self.clock = clock
        self.sessions = SessionStore(
            idle=timedelta(minutes=cfg.session_idle_minutes),
            lifetime=timedelta(hours=cfg.session_max_hours),
            clock=clock,
        )
        self.throttle = SignInThrottle(
            client_failures=cfg.sign_in_failures_per_client,
            account_failures=cfg.sign_in_failures_per_account,
            account_ceiling=cfg.sign_in_failures_per_account_total,
            window=timedelta(minutes=cfg.sign_in_window_minutes),
            max_delay=timedelta(seconds=cfg.sign_in_max_delay_seconds),
            clock=clock,
        )
        self.devices = DeviceCookies(
            device_key,
            lifetime=timedelta(days=cfg.known_device_days),
            clock=clock,
        )
        self.hops = cfg.forwarded_hops
        secure = cfg.secure_cookies
        self.secure_cookies = not loopback(cfg.host) if secure is None else secure
        # Each Argon2 check takes ~64 MiB and a core for a moment: a few at a time at most.
        self.hashing = asyncio.Semaphore(2)

    def session(self, request: Request) -> Session | None:
        """The request's session; a signed-in one ends if its account was removed or reset."""
        session = self.sessions.get(request.cookies.get(self.cookie))
        if session is None or session.user is None:
            return session
        if self.users.stamp(session.user) != session.stamp:
            self.sessions.end(session)
            return None
        return session

    async def check(self, request: Request, form: Any) -> SignInCheck:
        return await check_sign_in(
            request, form, users=self.users, devices=self.devices, throttle=self.throttle,
            hashing=self.hashing, now=self.clock(), hops=self.hops,
        )  # fmt: skip

    def signed_in(
        self, session: Session, name: str, response_for: Callable[[Session], Response]
    ) -> Response:
        """Sign ``session`` in as ``name``: the response (from ``response_for``) carries the
        new session's cookie and, when the account has a stamp, a known-device cookie."""
        stamp = self.users.stamp(name)  # a new one if the hash was upgraded just now
        response = response_for(self.sessions.sign_in(session, name, stamp))
        if stamp is not None:
            self.set_device_cookie(response, name, stamp)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            self.cookie, session.id, httponly=True, samesite="strict",
            secure=self.secure_cookies, path="/",
        )  # fmt: skip

    def set_device_cookie(self, response: Response, name: str, stamp: str) -> None:
        # Only the sign-in page ever reads it.
        response.set_cookie(
            DEVICE_COOKIE, self.devices.issue(name, stamp),
            max_age=int(self.devices.lifetime.total_seconds()), httponly=True,
            samesite="strict", secure=self.secure_cookies, path="/login",
        )  # fmt: skip
