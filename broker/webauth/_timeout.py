"""The warning before a session ends, so nobody loses what they typed without being told.

A session ends after ``session_idle_minutes`` without a request (WCAG 2.2.1, Timing
Adjustable: the person must be warned and able to extend it). A signed-in page loads one
same-origin script, ``/static/session.js``, given the limits as this server counts them (the
page's ``<script>`` tag carries them: nothing is hard-coded in the script). About two minutes
before the end it shows a dialog: *Stay signed in* posts to ``/session/keep-alive``, which
starts the idle clock again as any page does, and nothing more (the session's lifetime is
not extended, nothing is audited); *Sign out* signs out.

Each tab counts down from its own page, so before warning and again before giving up it asks
``GET /session/status`` how long the session really has: another tab may have used it
meanwhile. That look touches nothing (a tab left alone must never keep a session alive, or
reload a page and so audit a view nobody made), and neither does the sign-in page's look at
a session. Only when the server says the session has ended does the page go to the sign-in
page, which says so, and then back to the page it was (``data-next``: for a page drawn from a
form's POST, the form's page, never the POST's address). Without script nothing changes: the
page works as before and says nothing in advance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from math import ceil

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from broker.webauth._bounce import form_page
from broker.webauth._guard import Guard
from broker.webauth._sessions import Session
from broker.webauth._web import form_field, read_form

__all__ = [
    "KEEP_ALIVE",
    "STATUS",
    "WARNING",
    "SessionTimeout",
    "add_timeout_routes",
    "page_of",
    "session_timeout",
]

KEEP_ALIVE = "/session/keep-alive"
STATUS = "/session/status"
#: How long before the end the warning comes (GOV.UK's pattern: two minutes), or half the
#: idle limit when that is shorter.
WARNING = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class SessionTimeout:
    """What a signed-in page's script is told, in whole seconds as of the page's making."""

    idle_seconds: int  # the idle limit, for the warning's words
    idle_left_seconds: int  # until the session ends if nothing is done
    ends_in_seconds: int  # until its lifetime ends, whatever is done
    warn_seconds: int  # how long before the end the warning comes
    # For a page drawn from a form's POST, where signing in again returns to ("": the home
    # page); None for a GET's page, which returns to its own address as the browser has it.
    next_page: str | None = None


# A POST's form's page, set by the edge for the page's rendering (WebPages.render is not
# given the request). None for a GET: its address is not repeated in the page, since an
# address can hold what someone typed (an NHS number in place of an id).
_PAGE: ContextVar[str | None] = ContextVar("accord_page", default=None)


@contextmanager
def page_of(request: Request) -> Iterator[None]:
    """While answering ``request``, a page drawn from a POST returns to its form's page after
    signing in again."""
    posted = request.method not in ("GET", "HEAD")
    token = _PAGE.set((form_page(request) or "/") if posted else None)
    try:
        yield
    finally:
        _PAGE.reset(token)


def session_timeout(guard: Guard, session: Session | None) -> SessionTimeout | None:
    """The limits for a page rendered for ``session``; None unless someone is signed in."""
    if session is None or session.user is None:
        return None
    page = _PAGE.get()
    idle = guard.sessions.idle
    idle_left, lifetime_left = guard.sessions.left(session)
    # Rounded up: the page's end must never come before the server's (the script adds a
    # second more), or the sign-in page it goes to would find the session still alive.
    return SessionTimeout(
        idle_seconds=int(idle.total_seconds()),
        idle_left_seconds=max(0, ceil(idle_left.total_seconds())),
        ends_in_seconds=max(0, ceil(lifetime_left.total_seconds())),
        warn_seconds=int(min(WARNING, idle / 2).total_seconds()),
        next_page=None if page is None else "" if page == "/" else page,
    )


def _asset(name: str) -> str:
    return resources.files("broker.webauth").joinpath(f"static/{name}").read_text("utf-8")


def add_timeout_routes(app: FastAPI, guard: Guard) -> None:
    """``POST /session/keep-alive``, ``GET /session/status`` and the script's two files,
    ``/static/session.js`` and ``/static/session.css``."""
    script, style = _asset("session.js"), _asset("session.css")

    @app.get(STATUS)
    async def status(request: Request) -> Response:
        # Only looks: asked by a tab on its own, not by the person, so it must not count as
        # use. No CSRF token: it changes nothing, and another site cannot read the answer.
        limits = session_timeout(guard, guard.session(request, touch=False))
        body: dict[str, bool | int] = {"signed_in": False}  # nothing more said signed out
        if limits is not None:
            body = {
                "signed_in": True,
                "idle_left_seconds": limits.idle_left_seconds,
                "ends_in_seconds": limits.ends_in_seconds,
            }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.post(KEEP_ALIVE)
    async def keep_alive(request: Request) -> Response:
        # Looked at first without touching it: a post refused (no token, a wrong one) must
        # not keep the session alive.
        session = guard.session(request, touch=False)
        if session is None or session.user is None:
            return Response("not signed in\n", status_code=401, media_type="text/plain")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return Response("wrong form token\n", status_code=403, media_type="text/plain")
        # The same as any page the officer opens: the idle clock only. Nothing is logged
        # or audited: it shows nobody anything.
        guard.session(request)
        return Response(status_code=204)

    @app.get("/static/session.js")
    async def script_route() -> Response:
        return Response(
            script, media_type="text/javascript", headers={"Cache-Control": "max-age=300"}
        )

    @app.get("/static/session.css")
    async def style_route() -> Response:
        return Response(style, media_type="text/css", headers={"Cache-Control": "max-age=300"})
