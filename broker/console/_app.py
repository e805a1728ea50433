"""The console's web application: sign-in, sessions, CSRF and the security headers.

Pages live in :mod:`broker.console._pages`; this module builds the FastAPI app around them.
Every response carries a Content-Security-Policy that allows no script but the
session-timeout warning's own (:mod:`broker.webauth._timeout`) and no inline style,
``no-store`` caching (pages hold data about children) and no referrer. Every form POST needs
the session's CSRF token; the session cookie (``accord_console_session``, its own beside a
desk's on one host) is HttpOnly, SameSite=Strict, and Secure behind a proxy or off loopback.
A request for any host name but the console's own is refused (DNS rebinding). Sign-in is
throttled without lockout (a browser that signed in before carries a known-device cookie,
:mod:`broker.webauth._devices`) and answers every attempt after the same Argon2 work.
Personal data never travels in a URL: the NHS number is posted, never put in a query string,
so it reaches no access log or browser history.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response

from broker._words import noun, plural
from broker.console._chains import Shown
from broker.console._deps import ConsoleDeps
from broker.console._metrics import SignInOutcome
from broker.events import holds_nhs_or_telephone_number
from broker.governance import answer_notes, reason_legend
from broker.webauth import (
    Guard,
    Session,
    WebPages,
    add_page_basics,
    add_sign_in_routes,
    tls_applies,
)

log = structlog.get_logger("accord.console")

UNREADABLE = (
    "This account's second factor cannot be checked: ask an administrator to re-enrol it. "
    "The error has been logged."
)
NAME_HOLDS_A_NUMBER = (
    "This account's name cannot be recorded as a review's reviewer: it holds what could be an "
    "NHS or telephone number (the rule for account names: docs/governance.md, The governance "
    "console). Ask an administrator for an account with another name."
)


class Console(WebPages):
    """Shared state of one console process: deps, sessions, throttle and templates."""

    def __init__(self, deps: ConsoleDeps) -> None:
        super().__init__(
            Guard(deps.settings, deps.users, deps.device_key, app="console", clock=deps.clock),
            "broker.console",
        )
        self.deps = deps
        # A disclosure log's table explains the reason codes it shows (log_table.html).
        self.templates.globals["reason_legend"] = reason_legend
        self.templates.globals["answer_notes"] = answer_notes
        # A count a page shows agrees with its noun: "1 override", not "1 overrides".
        self.templates.filters["plural"] = plural
        self.templates.filters["noun"] = noun
        self.verifying = asyncio.Lock()  # one whole-log verification at a time
        self.verified = Shown()  # each session's last verification, until its page shows it
        if missing := sum(not a.second_factor for a in deps.users.accounts()):
            # A count: which accounts is for `accord console users` to say, not the log.
            log.warning("console_accounts_without_second_factor", count=missing)


def create_app(deps: ConsoleDeps) -> FastAPI:
    """The console as an ASGI app (serve it with uvicorn; test it with a TestClient)."""
    from broker.console._pages import register_pages  # noqa: PLC0415  # pages import this module

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(deps)
    app.state.console = console

    add_page_basics(app, console, name="console", log=log, hsts=tls_applies(deps.settings))
    add_sign_in_routes(
        app, console, lambda request, session, form: _sign_in(console, request, session, form)
    )
    register_pages(app, console)
    return app


async def _sign_in(console: Console, request: Request, session: Session, form: Any) -> Response:
    """Check a posted sign-in: every answer after the same work, every failure the same page."""
    check = await console.guard.check(request, form)
    if check.unreadable:
        # The account's name (staff, not personal data) and the file: enough to re-enrol it.
        log.error(
            "console_second_factor_unreadable", user=check.logged_name, users_file=check.users_file
        )
        console.deps.metrics.signed_in(SignInOutcome.FAILED)
        return console.render(
            "login.html", session, status=500, error=UNREADABLE,
            next_page=console.guard.next_page(form),
        )  # fmt: skip
    if not check.ok:
        # No name, no address: a name may be a mistyped password, an address personal.
        log.warning("console_sign_in_failed", throttled=check.refused)
        console.deps.metrics.signed_in(
            SignInOutcome.BUSY if check.busy
            else SignInOutcome.THROTTLED if check.refused is not None
            else SignInOutcome.FAILED
        )  # fmt: skip
        return console.render(
            "login.html", session, status=console.guard.failed_status(check),
            error=console.guard.failed(check),
            next_page=console.guard.next_page(form),
        )  # fmt: skip
    if holds_nhs_or_telephone_number(check.name):
        # An account made before add-user refused such names: its reviews would write the
        # number into the append-only log. Only after the password and code are right, so the
        # answer tells a guesser nothing; the log leaves the name out.
        log.warning("console_sign_in_refused_name", reason="number_in_name")
        console.deps.metrics.signed_in(SignInOutcome.FAILED)
        return console.render(
            "login.html", session, status=403, error=NAME_HOLDS_A_NUMBER,
            next_page=console.guard.next_page(form),
        )  # fmt: skip
    console.deps.metrics.signed_in(SignInOutcome.OK)
    log.info("console_sign_in", user=check.name, known_device=check.known_device)
    return console.guard.signed_in(session, check, lambda s: console.redirect("/", s))
