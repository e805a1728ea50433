"""The sign-in and sign-out pages every web app of Accord's serves, written once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broker.webauth._account import add_account_routes
from broker.webauth._bounce import safe_next
from broker.webauth._guard import Guard
from broker.webauth._sessions import Session
from broker.webauth._web import form_field, read_form

__all__ = ["SignInPages", "add_sign_in_routes"]

_EXPIRED = "The sign-in form expired. Reload the page and try again."
_SIGNED_OUT = "You have signed out."
_STILL_IN = (
    "You are still signed in: that Sign out button was on a page from an earlier session. "
    "Use Sign out on this page."
)
_LOST = (
    "What you typed on that form was not saved (it is not kept: it may be personal data). "
    "Type it again after signing in."
)


class SignInPages(Protocol):
    """What an app (the console, a desk) offers the sign-in routes."""

    guard: Guard

    def session(self, request: Request) -> Session | None: ...

    def redirect(self, to: str, session: Session | None = None) -> RedirectResponse: ...

    def render(
        self, name: str, session: Session | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse: ...

    def refused(self, why: str, *, status: int = 403) -> HTMLResponse: ...

    def stale_form(self, request: Request, *, note: str = "") -> Response: ...


def add_sign_in_routes(
    app: FastAPI,
    pages: SignInPages,
    sign_in: Callable[[Request, Session, Any], Awaitable[Response]],
) -> None:
    """``GET/POST /login``, ``POST /logout`` and the signed-in person's own password page
    (``/account/password``: :mod:`broker.webauth._account`); ``sign_in`` checks a posted form whose
    session and CSRF token are already known good. ``GET /login?next=<path>`` returns there
    after signing in (a same-site path only: :func:`safe_next`); ``lost=1`` says that what a
    bounced form held was not saved. The login template is given ``next_page`` and
    ``session_notices`` (why the page is here: a session ended, a form's text lost)."""

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        next_page = safe_next(request.query_params.get("next"))
        # Both only look: a tab whose countdown ran out comes here on its own, and must not
        # keep alive a session nobody is using (nor reload, and so audit, a page).
        ended = pages.guard.ended(request)  # first: the look below would end it anyway
        session = pages.guard.session(request, touch=False)
        if session is not None and session.user:
            return pages.redirect(next_page or "/")
        notices = [] if ended is None else [pages.guard.ended_message(ended)]
        if request.query_params.get("lost") == "1":
            notices.append(_LOST)
        if request.query_params.get("out") == "1" and ended is None:
            notices.append(_SIGNED_OUT)
        return pages.render(
            "login.html", session or pages.guard.sessions.new(), error=None,
            next_page=next_page, session_notices=notices,
        )  # fmt: skip

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        session = pages.session(request)
        if session is None:  # checked before the body is even read
            return pages.refused(_EXPIRED)
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return pages.refused(_EXPIRED)
        response = await sign_in(request, session, form)
        next_page = safe_next(form_field(form, "next"))
        if next_page and response.status_code == 303 and response.headers["location"] == "/":
            response.headers["location"] = next_page  # signed in: back to where they were
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        # Said on the sign-in page, so that someone at a shared computer sees it took.
        response = pages.redirect("/login?out=1")
        session = pages.session(request)
        if session is not None and session.user is None:
            # Signed out already (in another tab, which left a sign-in form's session): there
            # is nothing to sign out, and a refusal would read as "still signed in". That
            # session, perhaps another tab's sign-in form, is left alone: the token is unknown.
            return response
        if session is not None:
            form = await read_form(request)
            if not session.csrf_ok(form_field(form, "csrf")):
                # Signed in, said so (the header shows who, with a Sign out that works): on a
                # shared computer a bare refusal would look like being signed out.
                return pages.refused(_STILL_IN)
            pages.guard.sign_out(session)
        pages.guard.end_cookie(response)
        return response

    add_account_routes(app, pages)
