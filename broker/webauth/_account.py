"""A signed-in person's own password: ``GET/POST /account/password``, for the console and every
desk alike (:func:`broker.webauth.add_sign_in_routes` adds it).

Without it the only way to a new password was an administrator's ``add-user NAME --reset``,
which replaces the second factor too. Here the person gives the current password and, if the
account has one, a current code (taken, as a sign-in takes it), and the new one twice, under
the rules add-user keeps (:mod:`broker.webauth._password`); the attempt is charged to the
sign-in throttle's budgets as a sign-in from this browser would be (the known device it was
given at sign-in first, then this address's and its tries at the account), so a session left
open is no way round it to guess the password, and an officer's browser is not held by an
office address's budget others spent. The users file is written as a sign-in writes
it (:meth:`UserFile.change_password`: under its lock, replaced atomically). The person's
session goes on, under a new id; every other session of the old password ends at its next
request, told that the password was changed. Nothing typed is logged, kept or drawn again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import Response

from broker.errors import SecondFactorUnreadable
from broker.webauth._flash import Flash
from broker.webauth._password import password_problem
from broker.webauth._sessions import CHANGED_BY_OWNER, Session
from broker.webauth._throttle import client_key
from broker.webauth._web import client_host, form_field, read_form

if TYPE_CHECKING:
    from broker.webauth._routes import SignInPages

__all__ = ["ACCOUNT_PAGE", "add_account_routes"]

ACCOUNT_PAGE = "/account/password"
_WRONG = (
    "The current password or code is wrong. A code can be used once: wait for the next one "
    "(your authenticator app shows a new code every 30 seconds) and try again."
)
_DONE = (
    "Your password was changed. Any other session of yours has ended; your second factor is "
    "as it was."
)


class _Draw(Protocol):
    """The page drawn again for ``session``, with ``error`` in its summary: never what was typed."""

    def __call__(
        self, session: Session, name: str, *, status: int = 200, error: Flash | None = None
    ) -> Response: ...


def _problem(typed: dict[str, str]) -> Flash | None:
    """What is wrong with the form as typed, before any password is checked: nothing of the
    account is learned from it."""
    if not typed["current_password"]:
        return Flash.error("Enter your current password.", field="current_password")
    new = typed["new_password"]
    if (why := password_problem(new, typed["user"])) is not None:
        return Flash.error(f"The new password is refused: {why}.", field="new_password")
    if typed["new_password_again"] != new:
        return Flash.error(
            "The new password typed twice is not the same both times.",
            field="new_password_again",
        )
    if new == typed["current_password"]:
        return Flash.error(
            "The new password is the one you have now: choose another.", field="new_password"
        )
    return None


def add_account_routes(app: FastAPI, pages: SignInPages) -> None:
    guard = pages.guard

    def draw(
        session: Session, name: str, *, status: int = 200, error: Flash | None = None
    ) -> Response:
        return pages.render(
            "account_password.html", session, status=status,
            errors=[] if error is None else [error],
            second_factor=guard.users.has_second_factor(name), nav=ACCOUNT_PAGE,
        )  # fmt: skip

    @app.get(ACCOUNT_PAGE)
    async def password_form(request: Request) -> Response:
        session = pages.session(request)
        if session is None or session.user is None:
            return pages.redirect("/login")
        return draw(session, session.user)

    @app.post(ACCOUNT_PAGE)
    async def change_password(request: Request) -> Response:
        session = pages.session(request)
        if session is None or session.user is None:
            return pages.redirect("/login")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return pages.stale_form(request)
        return await _change(
            pages, request, session=session, name=session.user, form=form, draw=draw
        )


async def _change(
    pages: SignInPages, request: Request, *, session: Session, name: str, form: Any, draw: _Draw
) -> Response:
    guard = pages.guard
    typed = {
        key: form_field(form, key) or ""
        for key in ("current_password", "new_password", "new_password_again")
    } | {"user": name}
    if (problem := _problem(typed)) is not None:
        return draw(session, name, status=400, error=problem)
    client = client_key(client_host(request, guard.hops, guard.trusted))
    if guard.hashing.full(client):
        return draw(
            session, name, status=503,
            error=Flash.error("Too many sign-ins at once: try again in a minute."),
        )  # fmt: skip
    # A known browser (the session's, given at its sign-in) is charged to its own budget, as
    # at sign-in: an office NAT's address budget spent by others does not hold it (docs/desk.md).
    attempt = guard.throttle.attempt(name, client, session.device)
    if attempt.refused is not None:
        guard.log.warning(f"{guard.app}_password_change_failed", user=name, throttled=True)
        return draw(
            session, name, status=429,
            error=Flash.error(
                "Too many wrong attempts: wait up to "
                f"{guard.window_minutes} minutes and try again."
            ),
        )  # fmt: skip
    unreadable, stamp = None, None
    async with guard.hashing.turn(client):
        try:
            stamp = await asyncio.to_thread(
                guard.users.change_password, name, typed["current_password"],
                form_field(form, "code"), typed["new_password"], now=guard.clock(),
            )  # fmt: skip
        except SecondFactorUnreadable as exc:  # after the right password only, as at sign-in
            unreadable = exc.path
    if unreadable is not None:
        guard.log.error(f"{guard.app}_second_factor_unreadable", user=name, users_file=unreadable)
        return draw(
            session, name, status=500,
            error=Flash.error(
                "Your second factor cannot be checked, so the password was not changed: ask "
                f"your {guard.app} administrator to re-enrol it. The error has been logged."
            ),
        )  # fmt: skip
    if stamp is None:
        guard.log.warning(f"{guard.app}_password_change_failed", user=name, throttled=False)
        return draw(session, name, status=400, error=Flash.error(_WRONG, field="current_password"))
    guard.throttle.succeeded(attempt)
    guard.log.info(f"{guard.app}_password_changed", user=name)
    # This browser goes on under a new id (and a known-device cookie of the new password);
    # every other session holds the old stamp and ends at its next request. The stamp is
    # the one the change wrote, under the file's lock: read again, it could be a removal's
    # or a reset's that came in between, and this session would outlive it.
    kept = guard.sessions.sign_in(session, name, stamp, ended=CHANGED_BY_OWNER)
    kept.flash_success(_DONE)
    response = pages.redirect("/", kept)
    kept.device = guard.set_device_cookie(response, name, stamp)
    return response
