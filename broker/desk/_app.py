"""The desk's web application shell: sign-in, sessions, CSRF and the security headers.

The same bar as the governance console, from the same parts (:mod:`broker.webauth`): accounts
with an Argon2id password and a TOTP code (``accord desk add-user``), sign-in throttled without
lockout, server-side sessions, a CSRF token on every form, a Content-Security-Policy that
allows no script. Pages live in :mod:`broker.desk._pages`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import generate_latest

from broker.desk._deps import DeskDeps
from broker.webauth import (
    SECURITY_HEADERS,
    Guard,
    Session,
    add_sign_in_routes,
    bad_body,
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
        self.deps = deps
        self.guard = Guard(deps.settings, deps.users, cookie=COOKIE, clock=deps.clock)
        # The pages and sign-in use these by name.
        self.sessions = self.guard.sessions
        self.throttle = self.guard.throttle
        self.templates = Environment(
            loader=PackageLoader("broker.desk", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when

    def session(self, request: Request) -> Session | None:
        return self.guard.session(request)

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
        self.guard.set_cookie(response, session)

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

    add_sign_in_routes(
        app, desk, lambda request, session, form: _sign_in(desk, request, session, form)
    )
    register_pages(app, desk)
    return app


async def _sign_in(desk: Desk, request: Request, session: Session, form: Any) -> Response:
    """Every answer after the same Argon2 work, every failure the same page."""
    check = await desk.guard.check(request, form)
    if not check.ok:
        log.warning("desk_sign_in_failed", throttled=check.refused)
        return desk.render(
            "login.html", session, status=401,
            error="Sign-in failed: wrong user name, password or code, or too many attempts: "
            "wait a few minutes and try again.",
        )  # fmt: skip
    log.info("desk_sign_in", user=check.name, known_device=check.known_device)
    return desk.guard.signed_in(session, check.name, lambda s: desk.redirect("/", s))
