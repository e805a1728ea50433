"""The console's override pages: the queue of safeguarding overrides, one override's page,
and the review form posted from either (:mod:`._pages` says why each view is on record
before it is drawn)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.audit import AuditRecord
from broker.console._app import Console
from broker.console._deps import ConsoleDeps
from broker.errors import TransportError, UsageError
from broker.governance import (
    Window,
    override_entry,
    pending_overrides,
    reference_acceptable,
    review_override,
    reviewed_overrides,
)
from broker.webauth import Flash, Session, form_field

__all__ = ["REVIEWED_DAYS", "register_override_pages"]

#: How far back the overrides page lists reviews (``accord audit report`` lists its window's).
REVIEWED_DAYS = 90


# A contact event's id is a UUID (broker.events.ContactEvent). A looser "identifier" would
# let a 10-digit NHS number or a date of birth through into the log.
_EVENT_ID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_NOT_AN_ID = "(not an identifier)"


def _review_detail(
    deps: ConsoleDeps, event_id: str, recipient: str, decision: AuditRecord | None
) -> dict[str, str]:
    """The posted ids as the audit log may hold them. The form only ever sends an override's
    event and recipient; anything else is typed by hand and could be a name or an NHS
    number, so only what is known to be an id is kept, and the rest is a placeholder.
    ``decision``: the log's decision for that event and recipient, if it has one."""
    if decision is not None:
        return {"event_id": event_id, "recipient": recipient}  # ids the log already holds
    parties = deps.policy.bundle.parties if deps.policy is not None else {}
    return {
        "event_id": event_id if _EVENT_ID.fullmatch(event_id) else _NOT_AN_ID,
        "recipient": recipient if recipient in parties else _NOT_AN_ID,
    }


def _without_option(message: str) -> str:
    # The review's refusals name the CLI option ("--finding: ..."); the form has no options.
    option, sep, rest = message.partition(": ")
    return rest if sep and option.startswith("--") else message


def _review_refused(message: str, detail: dict[str, str]) -> tuple[str, str | None]:
    """What a refused review says on the queue, naming its override (as far as the ids posted
    are ids: ``detail``), and the id of the row's field at fault if there is one."""
    event_id, recipient = detail["event_id"], detail["recipient"]
    option = message.partition(": ")[0]
    known = _NOT_AN_ID not in (event_id, recipient)
    field = f"{option[2:]}-{event_id}-{recipient}" if known and option in _REVIEW_FIELDS else None
    text = f"Review of event {event_id} to {recipient} not recorded: {_without_option(message)}"
    return text, field


def _review_errors(
    text: str, field: str | None, detail: dict[str, str], *, wiped: bool
) -> list[Flash]:
    """The refused review's errors. A reference ``wiped`` is said removed even when the
    refusal was about something else (the finding, checked first): an empty field,
    unexplained, reads as never typed."""
    event_id, recipient = detail["event_id"], detail["recipient"]
    removed = _REFERENCE_REMOVED.format(event_id, recipient)
    if not wiped:
        return [Flash.error(text, field=field)]
    if field is not None and field.startswith("reference-"):
        return [Flash.error(removed, field=field, beside=_REFERENCE_SHORT)]
    known = _NOT_AN_ID not in (event_id, recipient)
    beside = f"reference-{event_id}-{recipient}" if known else None
    return [
        Flash.error(text, field=field),
        Flash.error(removed, field=beside, beside=_REFERENCE_SHORT),
    ]


_REVIEW_FIELDS = ("--finding", "--reference")
_REFERENCE_REMOVED = (
    "Review of event {0} to {1} not recorded: the reference you typed was removed (it may "
    "name a person or hold a number about one). Type it again as the IG case or ticket "
    "reference, which carries its case number, e.g. IG-2026-0142: up to 40 letters, digits "
    "and . _ / : -, never an NHS or telephone number, never a note or a name (even with a "
    "number added)."
)
_REFERENCE_SHORT = (
    "Up to 40 letters, digits and . _ / : -, with its case number; no NHS or phone number"
)


def register_override_pages(
    app: FastAPI,
    console: Console,
    *,
    signed_in: Callable[[Request], Session | None],
    posted: Callable[[Request], Awaitable[tuple[Session | None, Any]]],
    unposted: Callable[[Request], Response],
    refused_unless_audited: Callable[..., Awaitable[Response | None]],
    unavailable: Callable[[Session, BaseException | None], HTMLResponse],
) -> None:
    deps = console.deps

    async def queue(
        session: Session, *, status: int = 200, errors: Sequence[Flash] = (),
        typed: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        """The override queue, its view on record first; ``typed``: a refused review's form
        as it was posted, drawn again with ``errors``."""
        pending = pending_overrides(deps.store)
        since = deps.clock() - timedelta(days=REVIEWED_DAYS)
        reviewed = reviewed_overrides(deps.store, Window(since=since))
        keys = tuple(sorted({k for p in pending for k in p.subject_keys}
                            | {k for r in reviewed for k in r.subject_keys}))  # fmt: skip
        if refusal := await refused_unless_audited(session, "overrides", subject_keys=keys):
            return refusal
        return console.render("overrides.html", session, status=status, errors=errors,
                              typed=typed, pending=pending, reviewed=reviewed,
                              reviewed_days=REVIEWED_DAYS)  # fmt: skip

    async def decision_page(
        session: Session, event: str, recipient: str, *, status: int = 200,
        errors: Sequence[Flash] = (), typed: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        """One override's page, its view on record first (as for the queue)."""
        entry = override_entry(deps.store, event, recipient)
        # The child's keys whenever the log has the decision, an override or not: whatever the
        # page says of it is about that child.
        decision = deps.store.find_decision(event, recipient)
        # What it shared about a child, or that there is no such override: on record first.
        if refusal := await refused_unless_audited(
            session, "overrides.detail", detail=_review_detail(deps, event, recipient, decision),
            subject_keys=decision.subject_keys if decision else (),
        ):  # fmt: skip
            return refusal
        if entry is None:
            return console.render(
                "error.html", session, status=404, title="No such override",
                message="No safeguarding override for that event and recipient is in the "
                "audit index.",
            )  # fmt: skip
        return console.render(
            "override.html", session, status=status, errors=errors, typed=typed, entry=entry
        )

    @app.get("/overrides", response_class=HTMLResponse)
    async def overrides(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        return await queue(session)

    @app.get("/overrides/decision", response_class=HTMLResponse)
    async def override_detail(request: Request, event: str = "", recipient: str = "") -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        return await decision_page(session, event, recipient)

    @app.post("/overrides/review", response_class=HTMLResponse)
    async def review(request: Request) -> Response:
        session, form = await posted(request)
        if session is None:
            return unposted(request)
        event_id = form_field(form, "event_id") or ""
        recipient = form_field(form, "recipient") or ""
        finding = form_field(form, "finding") or ""
        reference = form_field(form, "reference") or ""
        # Whatever the answer says (no such override, already reviewed by whom) is audit data:
        # the attempt is on record before it is answered.
        decision = deps.store.find_decision(event_id, recipient)
        detail = _review_detail(deps, event_id, recipient, decision)
        if refusal := await refused_unless_audited(
            session, "overrides.review", detail=detail,
            subject_keys=decision.subject_keys if decision else (),
        ):  # fmt: skip
            return refusal
        try:
            rec = await review_override(
                deps.store, deps.audit, event_id=event_id, recipient=recipient,
                reviewed_by=session.user or "", finding=finding, reference=reference or None,
            )  # fmt: skip
        except UsageError as exc:
            # The page the form was on, drawn again in place (and its view audited, as the
            # page itself is) with the finding and reference as posted: kept nowhere else.
            text, field = _review_refused(str(exc), detail)
            done = deps.store.review_of(event_id, recipient) is not None
            status = 409 if done else 400
            # A reference that could not be logged is not put back: it may be an NHS
            # number or a note about someone, as a look-up's NHS number is not. The summary
            # says it was removed (an empty field, unexplained, reads as never typed).
            kept = reference if reference_acceptable(reference) else ""
            errors = _review_errors(text, field, detail, wiped=bool(reference) and not kept)
            typed = {"event_id": event_id, "recipient": recipient, "finding": finding,
                     "reference": kept}  # fmt: skip
            own_page = override_entry(deps.store, event_id, recipient) is not None
            if form_field(form, "page") == "decision" and own_page:
                return await decision_page(
                    session, event_id, recipient, status=status, errors=errors, typed=typed
                )
            return await queue(session, status=status, errors=errors, typed=typed)
        except TransportError as exc:
            return unavailable(session, exc)
        filed = await deps.index_wait(lambda: deps.store.review_of(event_id, recipient) is not None)
        where = f"{rec.chain}#{rec.seq}"
        session.flash_success(
            f"Review of event {event_id} to {recipient} recorded in the audit log ({where})."
            + ("" if filed else " It will leave this queue once the indexer has read it.")
        )
        return console.redirect("/overrides", session)
