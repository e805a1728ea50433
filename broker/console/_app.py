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
from datetime import timedelta
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from broker.console._deps import ConsoleDeps
from broker.console._metrics import SignInOutcome
from broker.webauth import (
    DEVICE_COOKIE,
    SECURITY_HEADERS,
    DeviceCookies,
    Session,
    SessionStore,
    SignInThrottle,
    bad_body,
    check_sign_in,
    device_key,
    form_field,
    loopback,
    read_form,
)

log = structlog.get_logger("accord.console")

COOKIE = "accord_session"
_HEADERS = SECURITY_HEADERS


class Console:
    """Shared state of one console process: deps, sessions, throttle and templates."""

    def __init__(self, deps: ConsoleDeps) -> None:
        cfg = deps.settings
        self.deps = deps
        self.sessions = SessionStore(
            idle=timedelta(minutes=cfg.session_idle_minutes),
            lifetime=timedelta(hours=cfg.session_max_hours),
            clock=deps.clock,
        )
        self.throttle = SignInThrottle(
            client_failures=cfg.sign_in_failures_per_client,
            account_failures=cfg.sign_in_failures_per_account,
            window=timedelta(minutes=cfg.sign_in_window_minutes),
            max_delay=timedelta(seconds=cfg.sign_in_max_delay_seconds),
            clock=deps.clock,
        )
        self.devices = DeviceCookies(
            device_key(deps.users.path.parent / "device-cookie.key"),
            lifetime=timedelta(days=cfg.known_device_days),
            clock=deps.clock,
        )
        secure = cfg.secure_cookies
        self.secure_cookies = not loopback(cfg.host) if secure is None else secure
        # Each Argon2 check takes ~64 MiB and a core for a moment: a few at a time at most.
        self.hashing = asyncio.Semaphore(2)
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
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None or session.user is None:
            return session
        if self.deps.users.stamp(session.user) != session.stamp:
            # The account was removed or its password reset: its sessions end with it.
            self.sessions.end(session)
            return None
        return session

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
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/",
        )

    def set_device_cookie(self, response: Response, name: str, stamp: str) -> None:
        response.set_cookie(
            DEVICE_COOKIE,
            self.devices.issue(name, stamp),
            max_age=int(self.devices.lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/login",  # only sign-in reads it
        )

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

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        session = console.session(request)
        if session is not None and session.user:
            return console.redirect("/")
        return console.render("login.html", session or console.sessions.new(), error=None)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        session = console.session(request)
        if session is None:  # checked before the body is even read
            return console.refused("The sign-in form expired. Reload the page and try again.")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return console.refused("The sign-in form expired. Reload the page and try again.")
        return await _sign_in(console, request, session, form)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = console.session(request)
        if session is not None:
            form = await read_form(request)
            if not session.csrf_ok(form_field(form, "csrf")):
                return console.refused("Missing or wrong form token.")
            console.sessions.end(session)
        response = console.redirect("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    register_pages(app, console)
    return app


async def _sign_in(console: Console, request: Request, session: Session, form: Any) -> Response:
    """Check a posted sign-in: every answer after the same work, every failure the same page."""
    check = await check_sign_in(
        request, form, users=console.deps.users, devices=console.devices,
        throttle=console.throttle, hashing=console.hashing, now=console.deps.clock(),
    )  # fmt: skip
    if not check.ok:
        # No name, no address: a name may be a mistyped password, an address personal.
        log.warning("console_sign_in_failed", throttled=check.refused)
        console.deps.metrics.signed_in(
            SignInOutcome.THROTTLED if check.refused is not None else SignInOutcome.FAILED
        )
        return _failed(console, session)
    console.deps.metrics.signed_in(SignInOutcome.OK)
    name, users = check.name, console.deps.users
    log.info("console_sign_in", user=name, known_device=check.known_device)
    stamp = users.stamp(name)  # a new one if the hash was upgraded just now
    response = console.redirect("/", console.sessions.sign_in(session, name, stamp))
    if stamp is not None:
        console.set_device_cookie(response, name, stamp)
    return response


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
