"""The desk's web application shell: sign-in, sessions, CSRF and the security headers.

The same bar as the governance console, from the same parts (:mod:`broker.webauth`): accounts
with an Argon2id password and a TOTP code (``accord desk add-user``), sign-in throttled without
lockout, server-side sessions in the party's own cookies (``accord_desk_<party>_session``),
a CSRF token on every form, a Content-Security-Policy that allows no script but the
session-timeout warning's own, no page for a host name not the desk's own. Pages live in
:mod:`broker.desk._pages`.
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, generate_latest

from broker.desk._deps import DeskDeps
from broker.desk._flag import view_child_keys
from broker.desk._show import local_time
from broker.events import holds_nhs_or_telephone_number
from broker.webauth import (
    Guard,
    Session,
    WebPages,
    add_page_basics,
    add_sign_in_routes,
    tls_applies,
)

__all__ = ["Desk", "create_desk_app"]

log = structlog.get_logger("accord.desk")

KIND_TITLES = {
    "coordinating_team": "co-ordinating team",
    "hub": "hub",
    "school": "school",
}


#: The title of a page that shows no record because its access could not be recorded.
NOT_CONFIRMED = "Not shown: the broker did not confirm"


# One per registry: an app made again on the same registry (a test's, or a desk rebuilt in
# process) counts on the same series instead of failing as a duplicate.
_BUSY: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _sign_ins_busy(registry: CollectorRegistry) -> Counter:
    if (counter := _BUSY.get(registry)) is None:
        counter = _BUSY[registry] = Counter(
            "accord_desk_sign_ins_busy",
            "Sign-ins refused unchecked: too many sign-in checks were waiting at once.",
            registry=registry,
        )
    return counter


class Desk(WebPages):
    """Shared state of one desk process: deps, sessions, throttle and templates."""

    def __init__(self, deps: DeskDeps) -> None:
        # Cookies named by party: two desks on one host (ports apart) keep their own.
        guard = Guard(
            deps.settings, deps.users, deps.device_key, app="desk", party=deps.party,
            clock=deps.clock,
        )  # fmt: skip
        super().__init__(guard, "broker.desk")
        self.deps = deps
        self.sign_ins_busy = _sign_ins_busy(deps.registry)
        # Times as the people reading them live them (Encompass deadlines are Europe/London's):
        # to the minute, GMT or BST.
        zone = ZoneInfo(deps.schools.timezone)
        self.templates.filters["when"] = lambda value: local_time(value, zone)
        if missing := sum(not a.second_factor for a in deps.users.accounts()):
            # As the console says it: a count (`accord desk users` names them), at every start,
            # since these pages show children's names and NHS numbers to a password alone.
            log.warning("desk_accounts_without_second_factor", count=missing)

    def page_context(self) -> dict[str, Any]:
        deps = self.deps
        return {
            "party": deps.party,
            "party_name": deps.party_name,
            "kind": deps.kind,
            "kind_title": KIND_TITLES.get(deps.kind, deps.kind),
            "deliveries_held": deps.deliveries_held is not None and deps.deliveries_held.held,
            "deliveries_parked": (
                deps.deliveries_held is not None and deps.deliveries_held.parked > 0
            ),
            "kafka_unreachable": self.kafka_unreachable(),
        }

    def kafka_unreachable(self) -> tuple[datetime, datetime | None] | None:
        """Since when the desk cannot reach Kafka and when it last did (None: never, as far as
        it knows); None while it can, or if that is not known here. A hub's or school's desk
        learns it from its contact with Kafka, a team's also from asking how far its flag
        service has read (the home page's banner)."""
        deps = self.deps
        contact = deps.kafka_contact
        if contact is not None and contact.unanswered_since is not None:
            last = contact.answered_at
            return (
                datetime.fromtimestamp(contact.unanswered_since, UTC),
                None if last is None else datetime.fromtimestamp(last, UTC),
            )
        fresh = deps.flags_freshness
        if fresh is not None and fresh.current.unchecked_since is not None:
            return fresh.current.unchecked_since, fresh.current.checked_at
        return None


def _record_it(form: Any) -> bool:
    """A Record it form (its ``record`` field): the referral's or outcome's text went already
    and is not lost; "type it again" would invite a second one (:mod:`broker.desk._record_sent`)."""
    return form.get("record") is not None


def create_desk_app(deps: DeskDeps) -> FastAPI:
    """The desk as an ASGI app (serve it with uvicorn; test it with a TestClient)."""
    from broker.desk._pages import register_pages  # noqa: PLC0415  # pages import this module

    # Before any page or delivery: a child keyed anew at the upgrade must find its records.
    rekeyed = deps.store.rekey_children(lambda view: view_child_keys(view, deps.linkage_key))
    if rekeyed is not None:
        log.info("desk_children_rekeyed", children=rekeyed)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    desk = Desk(deps)
    app.state.desk = desk

    own = resources.files("broker.desk").joinpath("static/desk.css").read_text("utf-8")
    # /metrics is read by Prometheus, not a person: its 404 and 405 stay JSON.
    add_page_basics(
        app, desk, name="desk", log=log, css=own, api_paths=("/metrics",),
        already_sent=_record_it, hsts=tls_applies(deps.settings),
    )  # fmt: skip

    @app.get("/metrics")
    async def metrics() -> Response:
        # Counts only, no labels naming anyone: safe without a session, as the ops servers are.
        return Response(generate_latest(deps.registry), media_type="text/plain; version=0.0.4")

    add_sign_in_routes(
        app, desk, lambda request, session, form: _sign_in(desk, request, session, form)
    )
    register_pages(app, desk)
    return app


NAME_HOLDS_A_NUMBER = (
    "This account's name cannot be recorded as who opened a record: it holds what could be "
    "an NHS or telephone number (the rule for account names: docs/desk.md, Security). Ask "
    "an administrator for an account with another name."
)


async def _sign_in(desk: Desk, request: Request, session: Session, form: Any) -> Response:
    """Every answer after the same Argon2 work, every failure the same page."""
    check = await desk.guard.check(request, form)
    if check.unreadable:
        # The account's name (staff, not personal data) and the file: enough to re-enrol it.
        log.error(
            "desk_second_factor_unreadable", user=check.logged_name, users_file=check.users_file
        )
        return desk.render(
            "login.html", session, status=500,
            error="This account's second factor cannot be checked: ask an administrator to "
            "re-enrol it. The error has been logged.", next_page=desk.guard.next_page(form),
        )  # fmt: skip
    if not check.ok:
        log.warning("desk_sign_in_failed", throttled=check.refused)
        if check.busy:
            desk.sign_ins_busy.inc()
        return desk.render(
            "login.html", session, status=desk.guard.failed_status(check),
            error=desk.guard.failed(check),
            next_page=desk.guard.next_page(form),
        )  # fmt: skip
    if holds_nhs_or_telephone_number(check.name):
        # An account made before add-user refused such names: every page would send an
        # acknowledgement the SDK refuses, and show a 503 saying "try again" for ever. Only
        # after the password is right, so that the answer says nothing to a guesser; the log
        # leaves the name out, as it may be a child's NHS number.
        log.warning("desk_sign_in_refused_name", reason="number_in_name")
        return desk.render(
            "login.html", session, status=403, error=NAME_HOLDS_A_NUMBER,
            next_page=desk.guard.next_page(form),
        )  # fmt: skip
    log.info("desk_sign_in", user=check.name, known_device=check.known_device)
    return desk.guard.signed_in(session, check, lambda s: desk.redirect("/", s))
