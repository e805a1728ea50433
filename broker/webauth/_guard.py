"""One web app's sign-in state: sessions, throttle, known devices, cookies, the sign-in check,
and the host names it answers to.

The console and the desk each hold one ``Guard``: the same rules for who is signed in and how
a session's and a device's cookies are set, written once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import Response

from broker.config import SignInSettings
from broker.webauth._bounce import safe_next
from broker.webauth._cookies import cookie_names
from broker.webauth._devices import DeviceCookies
from broker.webauth._exposure import tls_applies
from broker.webauth._hosts import HostCheck
from broker.webauth._sessions import (
    ANONYMOUS,
    CHANGED_BY_OWNER,
    REMOVED,
    RESET,
    RESTART,
    SIGNED_OUT,
    Ended,
    Session,
    SessionStore,
)
from broker.webauth._signin import HashGate, SignInCheck, check_sign_in
from broker.webauth._throttle import SignInThrottle
from broker.webauth._users import UserFile
from broker.webauth._web import form_field, loopback

__all__ = ["Guard"]

# What a signed-in session's id looks like (a nonce and its MAC; an earlier Accord's, the
# nonce alone): one this process did not make is counted as an unknown cookie (a restart's,
# or forged), anything else is no session at all.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}(\.[A-Za-z0-9_-]{43})?")
#: At most one line a minute says how many unknown session cookies came.
_UNKNOWN_SAID_EVERY = timedelta(minutes=1)


class Guard:
    """Sessions, sign-in throttling and known-device cookies (keyed by ``device_key``:
    :func:`broker.webauth.device_key`) for one app: ``app`` (``console``, ``desk``) and a
    desk's ``party`` name its cookies (:func:`broker.webauth.cookie_names`) and its settings'
    variables in errors. ``ConfigError`` if its allowed host names are not known."""

    def __init__(
        self,
        cfg: SignInSettings,
        users: UserFile,
        device_key: bytes,
        *,
        app: str,
        party: str | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        self.users = users
        self.clock = clock
        self.app = app
        # The app's own logger (accord.console, accord.desk): its sign-ins are logged there.
        self.log = structlog.get_logger(f"accord.{app}")
        self.idle_minutes = cfg.session_idle_minutes
        self.window_minutes = cfg.sign_in_window_minutes
        self.hosts = HostCheck.of(cfg, setting=f"ACCORD_{app.upper()}__ALLOWED_HOSTS")
        self.hops = cfg.forwarded_hops
        self.trusted = cfg.trusted_proxies or ()
        # Behind a proxy the browser's side is HTTPS, even when the app listens on loopback
        # (nginx with TLS in front of 127.0.0.1:8765), and so it is with the app's own TLS
        # or a proxy's declared; an explicit setting wins.
        secure = cfg.secure_cookies
        if secure is None:
            secure = tls_applies(cfg) or self.hops > 0 or not loopback(cfg.host)
        self.secure_cookies = secure
        self.cookies = cookie_names(app, party, secure=secure)
        self.cookie = self.cookies.session
        self.sessions = SessionStore(
            idle=timedelta(minutes=cfg.session_idle_minutes),
            lifetime=timedelta(hours=cfg.session_max_hours),
            clock=clock,
        )
        self.unknown_cookies = 0  # session cookies this process did not make, since its start
        self._unknown_unsaid = 0
        self._unknown_said_at: datetime | None = None
        self._unknown_last = ""
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
        # Each Argon2 check takes ~64 MiB and a core for a moment: a few at a time at most,
        # and a few more waiting (a flood of guesses must not queue an officer behind it).
        self.hashing = HashGate(
            at_once=2,
            waiting=cfg.sign_in_checks_waiting,
            per_client=cfg.sign_in_checks_per_address,
        )

    def session(self, request: Request, *, touch: bool = True) -> Session | None:
        """The request's session; a signed-in one ends if its account was removed or reset.
        ``touch``: its idle clock starts again, as it does for any request of a page; False
        for a look that is not the officer's doing."""
        cookie = request.cookies.get(self.cookie)
        session = self.sessions.get(cookie, touch=touch)
        if session is None:
            if cookie and not cookie.startswith(ANONYMOUS):
                self._found_ended(cookie)
            return None
        if session.user is None:
            return session
        stamp = self.users.stamp(session.user)
        # An account gone ends its sessions whatever stamp they hold (a session given None
        # would otherwise match it).
        if stamp is None or stamp != session.stamp:
            # Noted as such, so that the sign-in page does not say "idle, or a restart".
            self.sessions.end(session, self._changed(session, stamp))
            self._found_ended(session.id)
            return None
        return session

    def _changed(self, session: Session, stamp: str | None) -> str:
        """Why ``session`` no longer matches its account, now stamped ``stamp``: what replaced
        the session's own stamp, as recorded then (not what happened to the account last)."""
        if stamp is None or session.user is None:
            return REMOVED
        return CHANGED_BY_OWNER if self.users.ended_by_owner(session.user, session.stamp) else RESET

    def _found_ended(self, session_id: str) -> None:
        """Log, once, that the signed-in session of ``session_id`` ended and why: at the first
        request that finds it so (sessions end unseen, by the clock). An id this process made
        but did not note (the notes are bounded) is logged as a restart's, with no user known.
        An id it never made (a restart's, or forged: anyone can send one, to any page) is
        noted nowhere and only counted (:meth:`_unknown`); one no session could have is none."""
        noted = self.sessions.ended(session_id)
        if noted is None:
            if not self.sessions.issued(session_id):
                if _SESSION_ID.fullmatch(session_id):
                    self._unknown(session_id)
                return
            noted = self.sessions.note(session_id, Ended(RESTART, None))
        if noted.logged:
            return
        noted.logged = True
        if noted.user is None:
            self.log.info(f"{self.app}_session_ended", reason=noted.reason)
        else:
            self.log.info(f"{self.app}_session_ended", user=noted.user, reason=noted.reason)

    def _unknown(self, session_id: str) -> None:
        """Count a session cookie this process did not make, and say how many came at most
        once a minute (never a cookie's value): a line each let one client write hundreds a
        second. The same cookie again at once (a page's requests) is counted once."""
        if session_id == self._unknown_last:
            return
        self._unknown_last = session_id
        self.unknown_cookies += 1
        self._unknown_unsaid += 1
        now = self.clock()
        if self._unknown_said_at is None or now - self._unknown_said_at >= _UNKNOWN_SAID_EVERY:
            self.log.info(f"{self.app}_session_cookies_unknown", count=self._unknown_unsaid)
            self._unknown_said_at, self._unknown_unsaid = now, 0

    def sign_out(self, session: Session) -> None:
        """End ``session`` at its user's asking, logged as their sign-in is (the name only).
        Noted as signed out, with whose it was: its id used again (a copied cookie) is told
        and logged so, not as a restart's with nobody's name (review r46e 3)."""
        self.sessions.end(session, SIGNED_OUT)
        if session.user is not None:
            self.log.info(f"{self.app}_sign_out", user=session.user)

    def ended(self, request: Request) -> str | None:
        """Why the signed-in session whose cookie the request carries is no longer good
        (:mod:`broker.webauth._sessions`' reasons: idle too long, past its lifetime, its
        account reset or removed, signed out, or forgotten by a restart); None when there is no such
        cookie or its session is alive. Only what this browser's cookie was for is said,
        never anything of another account. It only looks: a session still alive is not
        counted as used."""
        cookie = request.cookies.get(self.cookie)
        if not cookie or cookie.startswith(ANONYMOUS):
            return None
        if self.session(request, touch=False) is not None:
            return None
        noted = self.sessions.ended(cookie)
        return RESTART if noted is None else noted.reason

    def ended_message(self, reason: str = RESTART) -> str:
        """What the sign-in page says of a session that ended for ``reason``."""
        admin = f"your {self.app} administrator"
        if reason == RESET:
            return (
                f"Your session ended: {admin} changed your account (a new password, and "
                "perhaps a new second factor). Sign in again with what they gave you; if they "
                "gave you nothing, ask them."
            )
        if reason == REMOVED:
            return (
                f"Your session ended: {admin} removed your account. If you still need one, "
                "ask them."
            )
        if reason == SIGNED_OUT:
            return "Your session ended: it was signed out. Sign in again."
        if reason == CHANGED_BY_OWNER:
            return (
                "Your session ended: your password was changed, in another browser or on "
                "another computer. Sign in with the new password; if you did not change it, "
                f"tell {admin} at once."
            )
        minutes = "1 minute" if self.idle_minutes == 1 else f"{self.idle_minutes} minutes"
        return (
            f"Your session ended (idle for {minutes}, or the {self.app} restarted): sign in again."
        )

    def failed(self, check: SignInCheck) -> str:
        """The sign-in page's words for a failed ``check``. The same for every account
        whatever went wrong, so they tell nobody which names exist; a refusal by the
        client's own budget (its network address, across every name) is said as such, a
        refusal on an account's budget is not (it would say that a name is being tried).
        Too many sign-ins at once (``BUSY``) is said too: it is so for every name."""
        if check.busy:
            return "Sign-in refused: too many sign-ins at once. Try again in a minute."
        if check.refused == "client":
            return (
                "Sign-in refused: too many failed attempts from this network address. Wait "
                f"up to {self.window_minutes} minutes and try again."
            )
        return (
            "Sign-in failed: wrong user name, password or code. A code can be used once: "
            "wait for the next one (your authenticator app shows a new code every 30 "
            "seconds) and try again."
        )

    @staticmethod
    def failed_status(check: SignInCheck) -> int:
        """The failed sign-in page's status: 503 when too busy to check, else 401."""
        return 503 if check.busy else 401

    @staticmethod
    def next_page(form: Any) -> str | None:
        """The sign-in form's page to return to, if it is a same-site path."""
        return safe_next(form_field(form, "next"))

    async def check(self, request: Request, form: Any) -> SignInCheck:
        return await check_sign_in(
            request, form, users=self.users, devices=self.devices, throttle=self.throttle,
            hashing=self.hashing, now=self.clock(), hops=self.hops, trusted=self.trusted,
            device_cookie=self.cookies.device,
        )  # fmt: skip

    def signed_in(
        self, session: Session, check: SignInCheck, response_for: Callable[[Session], Response]
    ) -> Response:
        """Sign ``session`` in as the ``check``'s account, with the stamp its sign-in wrote
        (not one read again: a reset or removal since then would be taken for the
        sign-in's): the response (from ``response_for``) carries the new session's cookie
        and a known-device cookie. ``ValueError`` for a check that did not sign in."""
        if not check.ok or check.stamp is None:
            raise ValueError("signed_in: the check did not sign anyone in")
        signed = self.sessions.sign_in(session, check.name, check.stamp)
        response = response_for(signed)
        signed.device = self.set_device_cookie(response, check.name, check.stamp)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            self.cookie, session.id, httponly=True, samesite="strict",
            secure=self.secure_cookies, path="/",
        )  # fmt: skip

    def end_cookie(self, response: Response) -> None:
        # With the attributes it was set with: a browser ignores a __Host- cookie's
        # deletion that is not Secure.
        response.delete_cookie(
            self.cookie, path="/", secure=self.secure_cookies, httponly=True, samesite="strict"
        )

    def set_device_cookie(self, response: Response, name: str, stamp: str) -> str:
        """Make this browser a known device of ``name``'s credential ``stamp``: its id, for
        the session to keep (:attr:`Session.device`)."""
        token = self.devices.issue(name, stamp)
        # Only the sign-in page ever reads it.
        response.set_cookie(
            self.cookies.device, token,
            max_age=int(self.devices.lifetime.total_seconds()), httponly=True,
            samesite="strict", secure=self.secure_cookies, path="/login",
        )  # fmt: skip
        return token.partition(".")[0]
