"""The console's web application: sign-in, sessions, CSRF and the security headers.

Pages live in :mod:`broker.console._pages`; this module builds the FastAPI app around them.
Every response carries a Content-Security-Policy that allows no script and no inline style,
``no-store`` caching (pages hold data about children) and no referrer. Every form POST needs
the session's CSRF token; the session cookie is HttpOnly, SameSite=Strict, and Secure unless
the console listens on loopback only. Sign-in is throttled without lockout (a browser that
signed in before carries a known-device cookie, :mod:`broker.console._devices`) and answers
every attempt after the same Argon2 work. Personal data never travels in a URL: the NHS number
is posted, never put in a query string, so it reaches no access log or browser history.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from broker.console._deps import ConsoleDeps
from broker.console._metrics import SignInOutcome
from broker.webauth import (
    SECURITY_HEADERS,
    Guard,
    Session,
    add_sign_in_routes,
    bad_body,
)

log = structlog.get_logger("accord.console")

COOKIE = "accord_session"
_HEADERS = SECURITY_HEADERS


class Console:
    """Shared state of one console process: deps, sessions, throttle and templates."""

    def __init__(self, deps: ConsoleDeps) -> None:
        self.deps = deps
        self.guard = Guard(deps.settings, deps.users, cookie=COOKIE, clock=deps.clock)
        # The pages and sign-in use these by name.
        self.sessions = self.guard.sessions
        self.throttle = self.guard.throttle
        self.verifying = asyncio.Lock()  # one whole-log verification at a time
        if missing := sum(not a.second_factor for a in deps.users.accounts()):
            # A count: which accounts is for `accord console users` to say, not the log.
            log.warning("console_accounts_without_second_factor", count=missing)
        self.templates = Environment(
            loader=PackageLoader("broker.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def session(self, request: Request) -> Session | None:
        return self.guard.session(request)

    def render(
        self, name: str, session: Session | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        page = self.templates.get_template(name).render(
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            flash=flash,
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        self.guard.set_cookie(response, session)

    def redirect(self, to: str, session: Session | None = None) -> RedirectResponse:
        response = RedirectResponse(to, status_code=303)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def refused(self, why: str, *, status: int = 403) -> HTMLResponse:
        return self.render("error.html", None, status=status, title="Refused", message=why)


def create_app(deps: ConsoleDeps) -> FastAPI:
    """The console as an ASGI app (serve it with uvicorn; test it with a TestClient)."""
    from broker.console._pages import register_pages  # noqa: PLC0415  # pages import this module

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(deps)
    app.state.console = console

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        if request.method == "POST" and (refusal := bad_body(request)) is not None:
            response: Response = refusal
        else:
            response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette answers this outside the middleware, so the headers are set here too. The
        # log names the exception's type and the path only: its message or traceback could
        # hold what the page was showing.
        log.error("console_error", path=request.url.path, error=type(exc).__name__)
        page = console.templates.get_template("error.html").render(
            user=None, csrf="", flash=[], title="Something went wrong",
            message="The console could not show this page. The error has been logged.",
        )  # fmt: skip
        return HTMLResponse(page, status_code=500, headers=_HEADERS)

    @app.get("/static/console.css")
    async def stylesheet() -> Response:
        css = resources.files("broker.console").joinpath("static/console.css").read_text("utf-8")
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    add_sign_in_routes(
        app, console, lambda request, session, form: _sign_in(console, request, session, form)
    )
    register_pages(app, console)
    return app


async def _sign_in(console: Console, request: Request, session: Session, form: Any) -> Response:
    """Check a posted sign-in: every answer after the same work, every failure the same page."""
    check = await console.guard.check(request, form)
    if not check.ok:
        # No name, no address: a name may be a mistyped password, an address personal.
        log.warning("console_sign_in_failed", throttled=check.refused)
        console.deps.metrics.signed_in(
            SignInOutcome.THROTTLED if check.refused is not None else SignInOutcome.FAILED
        )
        return _failed(console, session)
    console.deps.metrics.signed_in(SignInOutcome.OK)
    log.info("console_sign_in", user=check.name, known_device=check.known_device)
    return console.guard.signed_in(session, check.name, lambda s: console.redirect("/", s))


def _failed(console: Console, session: Session) -> HTMLResponse:
    return console.render(
        "login.html",
        session,
        status=401,
        error=(
            "Sign-in failed: wrong user name, password or code, or too many attempts: wait a "
            "few minutes and try again."
        ),
    )
