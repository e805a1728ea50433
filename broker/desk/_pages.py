"""The desk's pages, chosen by the party's kind: a co-ordinating team's flags, timelines and
decisions; a hub's referrals and outcomes; a school's Operation Encompass notices.

Every page that shows a record's content first sends an access acknowledgement naming the
signed-in person and the purpose the record was shared for to ``accord.access`` (the broker
audits it as ``opened``; :mod:`._purpose`); if it cannot be sent, the page shows no data. A
hidden record (consent withdrawn) shows only why it is hidden, and is not acknowledged
because nobody read it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._app import Desk
from broker.desk._child_pages import outcomes_of, register_child_pages
from broker.desk._deps import EventPublisher
from broker.desk._flag_close import register_flag_close
from broker.desk._flags_fresh import STALE_AFTER
from broker.desk._form_text import unfinished, written
from broker.desk._not_shared import not_shared
from broker.desk._notice_pages import register_notice_pages
from broker.desk._notices import LateNotices, desk_notices
from broker.desk._page_kit import ID, PageKit
from broker.desk._purpose import purpose_of
from broker.desk._record_pages import register_record_pages
from broker.desk._record_sent import Retries, outcome_recorder
from broker.desk._resend import (
    altered,
    not_again,
    record_lost,
    record_token,
    recorded_id,
    resend_lost,
    resend_stale_note,
    resend_token,
    resent_id,
    sent_field,
)
from broker.desk._show import basis_text, event_words, local_time, view_fields, window_text
from broker.desk._store import HUB_OUTCOMES, DeskStore, StoredRecord
from broker.desk._work import REFERRAL_TYPE, outcome_event
from broker.errors import (
    AccordError,
    RecordedAlready,
    SendUnconfirmed,
    StoreBusy,
    StoreUnavailable,
)
from broker.webauth import Flash, Session, form_field, read_form, refused_in_place

__all__ = ["register_pages"]

log = structlog.get_logger("accord.desk")


#: A hub's outcome for a referral whose consent was withdrawn (since its page was loaded).
_WITHDRAWN = (
    "The family has withdrawn consent to this referral, so no outcome can be sent for it: "
    "nothing was sent, and what you wrote was not kept. Stop using this record."
)


#: Where a refused outcome's words are, since nothing sent or kept them (referral.html).
_COPY = "what you wrote is shown below, to copy into your case system if you need it."


def _answered(store: DeskStore, referral: str) -> bool:
    return any(d.action in HUB_OUTCOMES for d in store.decisions(subject_event=referral))


def _answered_since(store: DeskStore, referral: str, zone: ZoneInfo) -> str:
    """Why an outcome for a referral answered since its page was loaded (a colleague, a
    second tab) is refused: by whom, when and how, as a team's decision about a flag settled
    since is told (broker.desk._child_pages), so that nobody sends a second, perhaps
    contrary, outcome unawares, or retypes the first."""
    answers = [d for d in store.decisions(subject_event=referral) if d.action in HUB_OUTCOMES]
    if not answers:  # being sent now, from another page
        return (
            "An outcome for this referral is being sent now, from another page; nothing was "
            f"sent: {_COPY}"
        )
    d = answers[-1]
    return (
        f"This referral has an outcome already: it was answered by {d.decided_by} at "
        f"{local_time(d.decided_at, zone)} ({d.action.replace('_', ' ')}) after this page was "
        f"loaded. Nothing was sent: {_COPY}"
    )


def register_pages(app: FastAPI, desk: Desk) -> None:  # noqa: PLR0915  # one route each
    deps = desk.deps
    store = deps.store
    desk.templates.globals.update(
        view_fields=view_fields,
        basis_text=basis_text,
        event_words=event_words,
        window_text=window_text,
        purpose_of=purpose_of,
        not_shared=not_shared,
    )
    answering: set[str] = set()  # referrals whose outcome is being sent now
    retries = Retries()  # sent events the busy database did not take (._record_sent)
    if deps.kind == "school":
        deps.registry.register(LateNotices(desk))

    kit = PageKit(desk)

    def not_sent(
        session: Session, exc: AccordError | None, what: str, text: str, *,
        action: str, event_id: str, fields: Sequence[tuple[str, str]], check: str,
        refused: str | None = None, left_out: int = 0, cause: str = "",
        sent_at: datetime | None = None,
    ) -> HTMLResponse:  # fmt: skip
        # Said here rather than on the record's page: that page acknowledges access again,
        # and with Kafka away would show only that it cannot. The person's words are given
        # back (escaped) in a form that sends them again under the same event id
        # (broker.desk._resend): nothing else kept them. ``refused``: why a re-send from
        # this page was refused; the page is drawn again as it was, every field still one
        # nobody can change, since the same event id must carry the same words. ``cause``:
        # "permanent" (nothing on this desk will let it go: no button), "stale" (the page
        # was from an earlier session: the same button, with this session's token),
        # "unrecorded" (sent, but the database was busy: the button records it and sends
        # nothing, under a token of its own, the ``record`` field).
        flags = [value for name, value in fields if name == "flag"]
        titles: dict[str, str] = {}
        if flags:
            # The database away (why a sent referral went unrecorded, maybe): the flags by
            # id, not the generic 503 page, which has no Record it and invites a second send.
            with contextlib.suppress(StoreUnavailable):
                titles = {f.flag_id: f.title for f in store.flags() if f.flag_id in flags}
        # "unrecorded" carries ``sent_at``, when the event was sent (its occurred_at), under
        # the record token's MAC: Record it records the decision at that time.
        unrecorded = cause == "unrecorded" and sent_at is not None
        token = partial(record_token, sent_at=sent_at) if unrecorded and sent_at else resend_token
        return desk.render(
            "not_sent.html", session, status=409 if refused else 503, what=what, text=text,
            action=action, errors=[Flash.error(refused)] if refused else (),
            title=f"The {what} was sent but not recorded" if unrecorded
            else f"The {what} was not sent again" if refused
            else f"The {what} may have been sent" if isinstance(exc, SendUnconfirmed)
            else f"The {what} was not sent",
            refused=bool(refused), left_out=left_out, cause=cause,
            unconfirmed=isinstance(exc, SendUnconfirmed), event_id=event_id, check=check,
            fields=fields, settles=[titles.get(f, f) for f in flags],
            # The form's page (the child's, the referral's); a 503's is the home page, which
            # needs no acknowledgement while Kafka is away.
            back=action.rsplit("/", 1)[0] if refused else "/", page_error=True,
            session_lost=record_lost(event_id, what) if unrecorded else resend_lost(
                event_id, what, maybe_sent=bool(refused) or isinstance(exc, SendUnconfirmed),
                button=cause != "permanent",
            ),
            token_field="record" if unrecorded else "resend",
            sent=sent_field(sent_at) if unrecorded and sent_at else "",
            resend=token(
                deps.device_key, party=deps.party, form=action, user=session.user or "",
                event_id=event_id, fields=fields,
            ),
        )  # fmt: skip

    async def publish(
        session: Session, publisher: EventPublisher, event: dict[str, Any], what: str,
        text: str, *, action: str, fields: Sequence[tuple[str, str]], check: str,
    ) -> HTMLResponse | None:  # fmt: skip
        """Sends a referral or outcome (``what``) from its form (``action``): None once sent,
        else its not-sent page."""
        try:
            await publisher.publish(event)
        except AccordError as exc:
            # desk_referral_failed, desk_outcome_failed
            log.error(f"desk_{what}_failed", error=type(exc).__name__)  # noqa: TRY400  # no traceback: it may hold the page
            return not_sent(
                session, exc, what, text, action=action, event_id=event["event_id"],
                fields=fields, check=check,
            )  # fmt: skip
        return None

    record_sent, unrecorded = outcome_recorder(desk, retries=retries, not_sent=not_sent)

    def stale(request: Request, session: Session, form: Any) -> Response:
        """The answer to a form whose CSRF token is not the session's. A not-sent page's
        re-send, pressed after its person signed in again (another tab, or after a timeout
        with the page kept open), is drawn again with this session's token and nothing sent,
        so that the same button can be pressed again: starting afresh would send a new
        referral under a new event id, two if the first arrived. Its token (a MAC over the
        user, the form and its words: broker.desk._resend) shows that the page was this
        person's; anything else is the shared stale-form page, which for a re-send says not
        to start again. A sent-but-not-recorded page's button (its ``record`` token) is drawn
        again the same way: it records what was sent."""
        recording = form_field(form, "record")
        token = recording if recording is not None else form_field(form, "resend")
        path = request.url.path
        what = (
            "outcome" if path.endswith("/outcome") else "referral" if path.endswith("/decide")
            else None
        )  # fmt: skip
        if token is None or what is None:
            return desk.stale_form(request)
        text = written(form_field(form, "reason" if what == "referral" else "summary") or "")
        fields = (
            [("action", form_field(form, "action") or ""), ("reason", text),
             *(("flag", v) for v in form.getlist("flag") if isinstance(v, str))]
            if what == "referral"
            else [("outcome", form_field(form, "outcome") or ""), ("summary", text)]
        )  # fmt: skip
        user = session.user or ""
        got = (
            recorded_id(
                deps.device_key, token, party=deps.party, form=path, user=user, fields=fields,
                sent=form_field(form, "sent"),
            ) if recording is not None
            else (resent_id(
                deps.device_key, token, party=deps.party, form=path, user=user, fields=fields
            ), None)
        )  # fmt: skip
        event, sent_at = got or (None, None)
        if event is None:
            return desk.stale_form(request, note=resend_stale_note(token, what))
        check = "ask the hub" if what == "referral" else "ask the co-ordinating team"
        if sent_at is not None:
            return not_sent(
                session, None, what, text, action=path, event_id=event, fields=fields,
                check=f"{check} whether it arrived", cause="unrecorded", sent_at=sent_at,
                refused=(
                    f"This page was from an earlier session, so nothing was recorded just "
                    f"now. The button below now belongs to this session: press it to record "
                    f"the {what} sent under event {event}."
                ),
            )  # fmt: skip
        return not_sent(
            session, None, what, text, action=path, event_id=event, fields=fields,
            check=f"{check} whether it arrived", cause="stale", refused=(
                f"This page was from an earlier session, so nothing was sent just now. The "
                f"button below now belongs to this session: press it to send the {what} "
                f"again, exactly as written and under the same event id ({event})."
            ),
        )  # fmt: skip

    def resent(
        form: Any, action: str, user: str, fields: Sequence[tuple[str, str]]
    ) -> tuple[bool, str | None]:
        """Whether the form's ``resend`` field, if any, is one this desk made for this form,
        person and content (``fields``, as posted); and the event id it carries (None for a
        first send)."""
        token = form_field(form, "resend")
        if token is None:
            return True, None
        found = resent_id(
            deps.device_key, token, party=deps.party, form=action, user=user, fields=fields
        )
        return found is not None, found

    async def team_form(request: Request, child: str) -> tuple[Session, str, Any, str] | Response:
        """A team's form about ``child``: session, person, form and the child's current key
        (a page may predate a re-keying); or the answer instead (sign in, stale, no page)."""
        session = kit.signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return stale(request, session, form)
        if deps.kind != "coordinating_team" or not ID.fullmatch(child):
            return desk.refused("No such page.", status=404, title="Page not found")
        return session, session.user, form, store.current_child(child)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        session = kit.signed_in(request)
        if session is None:
            return desk.redirect("/login")
        if deps.kind == "coordinating_team":
            referrals = [
                (d, outcomes_of(store, d)) for d in store.decisions() if d.action == "refer"
            ]
            flags = store.flags()
            open_flags = [f for f in flags if not f.decided]
            # A child with an open flag is listed by it already.
            flagged = {f.child for f in open_flags}
            every = store.new_since_decision()
            since = [n for n in every if n[0] not in flagged]
            checker = deps.flags_freshness
            return desk.render(
                "team.html", session, title="Flags awaiting a decision", flags=open_flags,
                decided=len(flags) - len(open_flags), referrals=referrals, since=since,
                since_flagged=len(every) - len(since),
                fresh=None if checker is None else checker.judged(checker.current),
                stale_minutes=int(STALE_AFTER.total_seconds() // 60),
            )  # fmt: skip
        if deps.kind == "hub":
            rows = [
                (r, store.decisions(subject_event=r.event_id))
                for r in store.records(event_type=REFERRAL_TYPE)
            ]
            return desk.render("hub.html", session, title="Referrals received", rows=rows)
        if deps.kind == "school":
            return desk.render(
                "school.html", session, title="Operation Encompass notices",
                notices=desk_notices(desk),
            )  # fmt: skip
        return desk.redirect("/records")

    async def referral_view(
        session: Session, record: StoredRecord, *, status: int = 200,
        errors: Sequence[Flash] = (), typed: dict[str, Any] | None = None,
    ) -> Response:  # fmt: skip
        """The referral's page, acknowledged as viewed first; ``typed``: a refused outcome's
        form as it was posted, drawn again with ``errors``."""
        if not await kit.acknowledged([record], session.user or ""):
            return kit.no_ack()
        return desk.render(
            "referral.html", session, status=status, errors=errors, typed=typed,
            title="Referral", record=record, outcomes=HUB_OUTCOMES, names=deps.party_names,
            decisions=store.decisions(subject_event=record.event_id),
        )  # fmt: skip

    @app.get("/referral/{event_id}", response_class=HTMLResponse)
    async def referral_page(request: Request, event_id: str) -> Response:
        got = kit.named_page(request, event_id, "referral", kind="hub", event_type=REFERRAL_TYPE)
        if isinstance(got, Response):
            return got
        session, _, record = got
        return await referral_view(session, record)

    @app.post("/referral/{event_id}/outcome")
    async def record_outcome(request: Request, event_id: str) -> Response:  # noqa: PLR0911, PLR0912  # each refusal its own page
        session = kit.signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return stale(request, session, form)
        record = kit.named(event_id, "referral", kind="hub", event_type=REFERRAL_TYPE)
        if isinstance(record, Response):
            return record
        page = f"/referral/{event_id}/outcome"
        outcome = form_field(form, "outcome") or ""
        typed_summary = form_field(form, "summary") or ""
        summary = written(typed_summary)
        fields = [("outcome", outcome), ("summary", summary)]
        if form_field(form, "record") is not None:  # sent already: recorded, not sent again
            return record_sent(session, session.user, page, form, fields, referral=event_id)
        good, again = resent(form, page, session.user, fields)
        check = "ask the co-ordinating team whether it arrived"

        # Drawn again as posted (never kept), but never with a re-send's token: anyone can
        # change this form, and other words under the first attempt's event id would be
        # dropped as a replay yet recorded here as sent (broker.desk._resend). A re-send
        # refused is its own page again (not_again_page); ``fresh``: no form as posted, the
        # outcome having gone.
        typed = {"outcome": outcome, "summary": typed_summary}
        refused = refused_in_place(partial(referral_view, session, record), typed)

        def not_again_page(event: str, why: str, *, cause: str = "") -> HTMLResponse:
            return not_sent(
                session, None, "outcome", summary, action=page, event_id=event, fields=fields,
                check=check, refused=not_again(event, why, what="outcome"), cause=cause,
            )  # fmt: skip

        # First: nothing on the form would make an outcome for it sendable.
        if record.hidden or deps.publisher is None:
            if again:
                return not_again_page(
                    again, "the family has withdrawn consent to this referral since"
                    if record.hidden else "this referral cannot be answered from here now",
                    cause="permanent",
                )  # fmt: skip
            return await refused(
                _WITHDRAWN if record.hidden else "This referral cannot be answered from here.",
                status=409, fresh=record.hidden,
            )  # fmt: skip

        async def conflict() -> Response | None:
            """The answer when the referral has, or is being sent, an outcome; None if not."""
            # One outcome per referral: a double click, a second tab or a colleague's page
            # still open would otherwise send the team another, perhaps contrary, one.
            # Checked again while a send is under way (the send awaits Kafka).
            if again and _answered(store, event_id):
                own = any(d.published_event == again
                          for d in store.decisions(subject_event=event_id))  # fmt: skip
                return await refused(
                    f"Outcome {again} was sent already; nothing more was sent." if own
                    else not_again(again, "this referral has had an outcome recorded since",
                                   what="outcome"),
                    status=409, fresh=True,
                )  # fmt: skip
            if again and event_id in answering:
                return not_again_page(again, "an outcome for this referral is being sent now")
            if event_id in answering or _answered(store, event_id):
                # Drawn with what was typed, read only (the form has gone): referral.html.
                return await refused(
                    _answered_since(store, event_id, ZoneInfo(deps.schools.timezone)),
                    status=409,
                )  # fmt: skip
            return None

        # Answered since the page was loaded comes before a field at fault: the outcome form
        # has gone, so a 400 would link to fields no longer on the page, and not say who
        # answered. A re-send's content is the one checked when it was first sent (its MAC
        # covers it).
        if (answer := await conflict()) is not None:
            return answer
        if wrong := unfinished(
            outcome, HUB_OUTCOMES, summary, field="outcome", what="summary",
            choose="Choose an outcome",
        ):  # fmt: skip  # each field at fault its own error (._form_text)
            return await referral_view(session, record, status=400, errors=wrong, typed=typed)
        if not good:
            return desk.refused(altered("outcome"))
        answering.add(event_id)
        try:
            now = deps.clock()
            event = outcome_event(
                party=deps.party, referral=record, outcome=outcome, summary=summary, at=now
            )
            if again:  # the same event as the attempt given up on (broker.desk._resend)
                event["event_id"] = again
            unsent = await publish(
                session, deps.publisher, event, "outcome", summary, action=page, fields=fields,
                check=check,
            )  # fmt: skip
            if unsent is not None:
                return unsent
            try:
                store.decide(
                    action=outcome, reason=summary, by=session.user, at=now,
                    subject_event=event_id, published_event=event["event_id"],
                )  # fmt: skip
            except RecordedAlready:  # a re-send another desk process recorded meanwhile
                return await refused(
                    f"Outcome {again} was sent already; nothing more was sent.", status=409,
                    fresh=True,
                )  # fmt: skip
            except (StoreBusy, StoreUnavailable):  # busy, or out of reach: sent, unrecorded
                return unrecorded(
                    session, referral=event_id, event_id=event["event_id"], outcome=outcome,
                    summary=summary, by=session.user, sent_at=now,
                )  # fmt: skip
        finally:
            answering.discard(event_id)
        # As a team's decision is logged (desk_decision): who sent which outcome, ids only.
        log.info("desk_outcome_sent", outcome=outcome, by=session.user, event_id=event["event_id"])
        session.flash_success(
            f"Outcome {outcome.replace('_', ' ')} sent through the broker to the referring team."
        )
        return desk.redirect(f"/referral/{event_id}", session)

    register_child_pages(
        app, kit, team_form=team_form, resent=resent, not_sent=not_sent, publish=publish,
        retries=retries,
    )  # fmt: skip
    register_flag_close(app, desk, team_form=team_form)
    register_notice_pages(app, kit)
    register_record_pages(app, kit)
