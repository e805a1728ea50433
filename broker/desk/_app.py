"""The desk's web application shell: sign-in, sessions, CSRF and the security headers.

The same bar as the governance console, from the same parts (:mod:`broker.webauth`): accounts
with an Argon2id password and a TOTP code (``accord desk add-user``), sign-in throttled without
lockout, server-side sessions, a CSRF token on every form, a Content-Security-Policy that
allows no script. Pages live in :mod:`broker.desk._pages`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import generate_latest

from broker.desk._deps import DeskDeps
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

__all__ = ["Desk", "create_desk_app"]

log = structlog.get_logger("accord.desk")

COOKIE = "accord_desk_session"
KIND_TITLES = {
    "coordinating_team": "co-ordinating team",
    "hub": "hub",
    "school": "school",
}


class Desk:
    """Shared state of one desk process: deps, sessions, throttle and templates."""

    def __init__(self, deps: DeskDeps) -> None:
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
        self.hashing = asyncio.Semaphore(2)  # Argon2: ~64 MiB and a core each
        self.templates = Environment(
            loader=PackageLoader("broker.desk", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when

    def session(self, request: Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(COOKIE))
        if session is None or session.user is None:
            return session
        if self.deps.users.stamp(session.user) != session.stamp:
            self.sessions.end(session)  # account removed or reset: its sessions end with it
            return None
        return session

    def render(
        self, name: str, session: Session | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        deps = self.deps
        page = self.templates.get_template(name).render(
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            flash=flash,
            party=deps.party,
            party_name=deps.party_name,
            kind=deps.kind,
            kind_title=KIND_TITLES.get(deps.kind, deps.kind),
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE, session.id, httponly=True, samesite="strict",
            secure=self.secure_cookies, path="/",
        )  # fmt: skip

    def redirect(self, to: str, session: Session | None = None) -> RedirectResponse:
        response = RedirectResponse(to, status_code=303)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def refused(self, why: str, *, status: int = 403) -> HTMLResponse:
        return self.render("error.html", None, status=status, title="Refused", message=why)


def _when(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def create_desk_app(deps: DeskDeps) -> FastAPI:
    """The desk as an ASGI app (serve it with uvicorn; test it with a TestClient)."""
    from broker.desk._pages import register_pages  # noqa: PLC0415  # pages import this module

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    desk = Desk(deps)
    app.state.desk = desk

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        if request.method == "POST" and (refusal := bad_body(request)) is not None:
            response: Response = refusal
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # The type only: a message could hold what the page was showing.
        log.error("desk_error", path=request.url.path, error=type(exc).__name__)
        page = desk.templates.get_template("error.html").render(
            user=None, csrf="", flash=[], party=deps.party, party_name=deps.party_name,
            title="Something went wrong",
            message="The desk could not show this page. The error has been logged.",
        )  # fmt: skip
        return HTMLResponse(page, status_code=500, headers=SECURITY_HEADERS)

    @app.get("/static/desk.css")
    async def stylesheet() -> Response:
        css = resources.files("broker.desk").joinpath("static/desk.css").read_text("utf-8")
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    @app.get("/metrics")
    async def metrics() -> Response:
        # Counts only, no labels naming anyone: safe without a session, as the ops servers are.
        return Response(generate_latest(deps.registry), media_type="text/plain; version=0.0.4")

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        session = desk.session(request)
        if session is not None and session.user:
            return desk.redirect("/")
        return desk.render("login.html", session or desk.sessions.new(), error=None)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        session = desk.session(request)
        if session is None:
            return desk.refused("The sign-in form expired. Reload the page and try again.")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return desk.refused("The sign-in form expired. Reload the page and try again.")
        return await _sign_in(desk, request, session, form)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = desk.session(request)
        if session is not None:
            form = await read_form(request)
            if not session.csrf_ok(form_field(form, "csrf")):
                return desk.refused("Missing or wrong form token.")
            desk.sessions.end(session)
        response = desk.redirect("/login")
        response.delete_cookie(COOKIE, path="/")
        return response

    register_pages(app, desk)
    return app


async def _sign_in(desk: Desk, request: Request, session: Session, form: Any) -> Response:
    """Every answer after the same Argon2 work, every failure the same page."""
    check = await check_sign_in(
        request, form, users=desk.deps.users, devices=desk.devices, throttle=desk.throttle,
        hashing=desk.hashing, now=desk.deps.clock(),
    )  # fmt: skip
    if not check.ok:
        log.warning("desk_sign_in_failed", throttled=check.refused)
        return desk.render(
            "login.html", session, status=401,
            error="Sign-in failed: wrong user name, password or code, or too many attempts: "
            "wait a few minutes and try again.",
        )  # fmt: skip
    name, users = check.name, desk.deps.users
    log.info("desk_sign_in", user=name, known_device=check.known_device)
    stamp = users.stamp(name)
    response = desk.redirect("/", desk.sessions.sign_in(session, name, stamp))
    if stamp is not None:
        response.set_cookie(
            DEVICE_COOKIE, desk.devices.issue(name, stamp),
            max_age=int(desk.devices.lifetime.total_seconds()), httponly=True,
            samesite="strict", secure=desk.secure_cookies, path="/login",
        )  # fmt: skip
    return response
