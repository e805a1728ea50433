"""The desk's pages, chosen by the party's kind: a co-ordinating team's flags, timelines and
decisions; a hub's referrals and outcomes; a school's Operation Encompass notices.

Every page that shows a record's content first sends an access acknowledgement naming the
signed-in person and the purpose the record was shared for to ``accord.access`` (the broker
audits it as ``opened``; :mod:`._purpose`); if it cannot be sent, the page shows no data. A
hidden record (consent withdrawn) shows only why it is hidden, and is not acknowledged
because nobody read it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._app import Desk
from broker.desk._flag_close import register_flag_close
from broker.desk._flags_fresh import STALE_AFTER
from broker.desk._notices import LateNotices, desk_notices
from broker.desk._purpose import by_purpose, purpose_of
from broker.desk._record_pages import register_record_pages
from broker.desk._resend import not_again, resend_token, resent_id
from broker.desk._show import basis_text, person_name, view_fields, window_text
from broker.desk._store import (
    HUB_OUTCOMES,
    RECORDS_WITHDRAWN,
    TEAM_ACTIONS,
    DeskStore,
    StoredDecision,
    StoredFlag,
    StoredRecord,
)
from broker.desk._work import (
    ENCOMPASS_TYPE,
    REFERRAL_TYPE,
    child_subject,
    encompass_notice,
    outcome_event,
    referral_event,
)
from broker.errors import AccordError, SendUnconfirmed
from broker.webauth import Session, form_field, read_form

__all__ = ["register_pages"]

log = structlog.get_logger("accord.desk")

_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_MAX_REASON = 2000
# The decision form's checkboxes, within read_form's 16 fields (with csrf, action, reason).
_MAX_FLAGS_SETTLED = 12


class _NoAck(Exception):
    """An acknowledgement could not be sent: the page shows nothing."""


def _outcomes(store: DeskStore, decision: StoredDecision) -> list[StoredRecord]:
    """A referral's outcomes as the team may see them: none whose consent was withdrawn."""
    return [o for o in store.replies_to(decision.published_event or "") if not o.hidden]


def _answered(store: DeskStore, referral: str) -> bool:
    return any(d.action in HUB_OUTCOMES for d in store.decisions(subject_event=referral))


def _flag_marks(flags: Sequence[StoredFlag]) -> dict[str, list[tuple[StoredFlag, bool]]]:
    """Per record, the flags that counted it, each with whether the record triggered it."""
    marks: dict[str, list[tuple[StoredFlag, bool]]] = {}
    for f in flags:
        for event_id in f.event_ids:
            marks.setdefault(event_id, []).append((f, event_id == f.trigger_event_id))
    return marks


def _not_referred(again: str | None, *, withdrawn: bool) -> str:
    """Why a referral was refused. Withdrawn: a ticked flag's records may not be used to
    refer (a page loaded before the withdrawal). A re-send is never said to have sent
    nothing: the attempt it repeats may have been (broker.desk._resend)."""
    if again:
        return not_again(
            again, "a flag it settles has had all its records withdrawn since" if withdrawn
            else "this desk cannot send a referral for this child now",
        )  # fmt: skip
    if withdrawn:
        return (
            "A flag whose records have all been withdrawn cannot be settled by a referral: "
            "close it with “Close: its records were withdrawn”. Nothing was sent."
        )
    return "This desk cannot send a referral for this child."


def register_pages(app: FastAPI, desk: Desk) -> None:  # noqa: PLR0915  # one route each
    deps = desk.deps
    store = deps.store
    desk.templates.globals.update(
        view_fields=view_fields,
        basis_text=basis_text,
        window_text=window_text,
        purpose_of=purpose_of,
    )
    answering: set[str] = set()  # referrals whose outcome is being sent now
    if deps.kind == "school":
        deps.registry.register(LateNotices(desk))

    def signed_in(request: Request) -> Session | None:
        session = desk.session(request)
        return session if session is not None and session.user else None

    async def viewed(records: Sequence[StoredRecord], user: str) -> None:
        # Each record for what it was shared for (._purpose): one bounded send per purpose,
        # all recorded or none (then nothing is shown), or SendUnconfirmed (shown nothing; may
        # yet be recorded: broker.sdk._bounded). A later send failing leaves the earlier ones
        # recorded and nothing shown: the log may say more was viewed than was, never less.
        shown = [r for r in records if not r.hidden]
        for purpose, group in by_purpose(shown).items():
            try:
                await deps.acks.acknowledge_all(
                    [r.event_id for r in group], by=user, purpose=purpose
                )
            except AccordError as exc:
                log.error("desk_ack_failed", error=type(exc).__name__)  # noqa: TRY400  # no traceback: it may hold the page
                raise _NoAck from exc

    def no_ack() -> HTMLResponse:
        return desk.refused(
            # True whether Kafka refused it or may yet commit it (SendUnconfirmed).
            "The broker did not confirm that it recorded your access, so the record is not "
            "shown. Try again in a moment.",
            status=503,
        )

    def not_sent(
        session: Session, exc: AccordError, what: str, text: str, *,
        action: str, event_id: str, fields: Sequence[tuple[str, str]], check: str,
    ) -> HTMLResponse:  # fmt: skip
        # Said here rather than on the record's page: that page acknowledges access again,
        # and with Kafka away would show only that it cannot. The person's words are given
        # back (escaped) in a form that sends them again under the same event id
        # (broker.desk._resend): nothing else kept them.
        return desk.render(
            "not_sent.html", session, status=503, what=what, text=text, action=action,
            title=f"The {what} may have been sent" if isinstance(exc, SendUnconfirmed)
            else f"The {what} was not sent",
            unconfirmed=isinstance(exc, SendUnconfirmed), event_id=event_id, check=check,
            fields=fields, resend=resend_token(
                deps.device_key, party=deps.party, form=action, user=session.user or "",
                event_id=event_id,
            ),
        )  # fmt: skip

    def resent(form: Any, action: str, user: str) -> tuple[bool, str | None]:
        """Whether the form's ``resend`` field, if any, is one this desk made for this form
        and person; and the event id it carries (None for a first send)."""
        token = form_field(form, "resend")
        if token is None:
            return True, None
        found = resent_id(deps.device_key, token, party=deps.party, form=action, user=user)
        return found is not None, found

    async def checked_form(request: Request, session: Session) -> Any | None:
        form = await read_form(request)
        return form if session.csrf_ok(form_field(form, "csrf")) else None

    async def team_form(request: Request, child: str) -> tuple[Session, str, Any, str] | Response:
        """A team's form about ``child``: session, person, form and the child's current key
        (a page may predate a re-keying); or the answer instead (sign in, stale, no page)."""
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        form = await checked_form(request, session)
        if form is None:
            return desk.refused("Missing or wrong form token.")
        if deps.kind != "coordinating_team" or not _ID.fullmatch(child):
            return desk.refused("No such page.", status=404)
        return session, session.user, form, store.current_child(child)

    def named(event_id: str, kind: str, event_type: str) -> StoredRecord | None:
        """The record a page's address names, if this desk is a ``kind``'s and the record
        an ``event_type``; None for anything else, so every miss looks the same."""
        record = store.record(event_id) if _ID.fullmatch(event_id) else None
        if deps.kind != kind or record is None or record.event_type != event_type:
            return None
        return record

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return desk.redirect("/login")
        if deps.kind == "coordinating_team":
            referrals = [(d, _outcomes(store, d)) for d in store.decisions() if d.action == "refer"]
            flags = store.flags()
            open_flags = [f for f in flags if not f.decided]
            # A child with an open flag is listed by it already.
            flagged = {f.child for f in open_flags}
            since = [n for n in store.new_since_decision() if n[0] not in flagged]
            checker = deps.flags_freshness
            return desk.render(
                "team.html", session, title="Flags awaiting a decision", flags=open_flags,
                decided=len(flags) - len(open_flags), referrals=referrals, since=since,
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

    @app.get("/child/{child}", response_class=HTMLResponse)
    async def child_page(request: Request, child: str, flag: str | None = None) -> Response:
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        if deps.kind != "coordinating_team" or not _ID.fullmatch(child):
            return desk.refused("No such page.", status=404)
        if (now := store.current_child(child)) != child:  # a key from before 2026-12-05
            return desk.redirect(f"/child/{now}" + (f"?flag={flag}" if flag else ""))
        records = store.records_about(child)
        if not records:
            return desk.refused("No record about this child is held here.", status=404)
        referrals = [
            (d, _outcomes(store, d)) for d in store.decisions(child=child) if d.action == "refer"
        ]
        flags = [f for f in store.flags() if f.child == child]
        # A household rule's flag also names records about the other children at the
        # child's address: shown (and acknowledged) beside the child's own, as the team
        # must see what made the flag fire.
        own = {r.event_id for r in records}
        household = [
            found for i in dict.fromkeys(i for f in flags for i in f.event_ids)
            if i not in own and (found := store.record(i)) is not None
        ]  # fmt: skip
        # An outcome may name the child by other fields than the team's records (a hub need
        # not hold the NHS number): shown with its referral, so acknowledged with the rest.
        shown = {r.event_id: r for r in [*records, *household]}
        shown.update({o.event_id: o for _, outcomes in referrals for o in outcomes})
        try:
            await viewed(list(shown.values()), session.user)
        except _NoAck:
            return no_ack()
        by_agency: dict[str, list[StoredRecord]] = {}
        for r in records:
            by_agency.setdefault(r.sender, []).append(r)
        decisions = store.decisions(child=child)
        # A flag whose records were all withdrawn is closed by its own button, never settled
        # by a decision about the child: a referral, above all, right after the family
        # withdrew consent (broker.desk._flag_close).
        open_flags = [f for f in flags if not f.decided and not f.withdrawn]
        # Nothing left to refer on (every record withdrawn): "refer" is not offered.
        actions = [a for a in TEAM_ACTIONS
                   if a != "refer" or any(not r.hidden for r in records)]  # fmt: skip
        # Who the child is, from the records just acknowledged (hidden ones give nothing): for
        # the heading only. The title and the address never name the child: a browser's
        # history keeps them.
        who = child_subject(records, child, deps.linkage_key)
        return desk.render(
            "child.html", session, title="A child's timeline", child=child, records=records,
            child_name=None if who is None else person_name(who),
            child_born=None if who is None else who.get("dob"),
            child_nhs=None if who is None else who.get("nhs_number"),
            by_agency=by_agency, flags=flags, household=household,
            flag_id=flag if flag and any(f.flag_id == flag for f in flags) else "",
            flag_records={f.flag_id: [(i, shown.get(i)) for i in f.event_ids] for f in flags},
            flag_decisions={f.flag_id: [d for d in decisions if f.flag_id in d.flag_ids]
                            for f in flags},
            flag_titles={f.flag_id: f.title for f in flags}, marks=_flag_marks(flags),
            open_flags=open_flags[:_MAX_FLAGS_SETTLED],
            more_open=max(0, len(open_flags) - _MAX_FLAGS_SETTLED),
            decisions=decisions, referrals=referrals, actions=actions,
            withdrawn_action=RECORDS_WITHDRAWN,
            names=deps.party_names,
        )  # fmt: skip

    @app.get("/flag/{flag_id}")
    async def flag_page(request: Request, flag_id: str) -> Response:
        session = signed_in(request)
        if session is None:
            return desk.redirect("/login")
        found = store.flag(flag_id) if _ID.fullmatch(flag_id) else None
        if found is None:
            return desk.refused("No such flag.", status=404)
        return desk.redirect(f"/child/{found.child}?flag={found.flag_id}")

    @app.post("/child/{child}/decide")
    async def decide(request: Request, child: str) -> Response:  # noqa: PLR0911  # each refusal its own page
        if isinstance(got := await team_form(request, child), Response):
            return got
        session, user, form, child = got
        action = form_field(form, "action") or ""
        reason = (form_field(form, "reason") or "").strip()
        if action not in TEAM_ACTIONS or not reason or len(reason) > _MAX_REASON:
            session.flash_error(
                "Choose a decision and give a reason (up to 2000 characters).",
                field="action" if action not in TEAM_ACTIONS else "reason",
            )
            return desk.redirect(f"/child/{child}")
        # The flags ticked on the form, and only this child's: an id carried over from
        # another child's page, or posted, settles nothing.
        ticked = {v for v in form.getlist("flag") if isinstance(v, str) and _ID.fullmatch(v)}
        ticked_flags = [f for f in store.flags() if f.child == child and f.flag_id in ticked]
        # No decision about the child settles a flag whose records have all been withdrawn
        # (the page says so): one loaded before the withdrawal still ticks it.
        settles = [f.flag_id for f in ticked_flags if not f.withdrawn]
        withdrawn = len(ticked_flags) - len(settles)
        now = deps.clock()
        published = None
        if action == "refer":
            # A re-send first: what is said of it must not deny the attempt it repeats.
            good, again = resent(form, f"/child/{child}/decide", user)
            if not good:
                return desk.refused("Missing or wrong form token.")
            if again and any(d.published_event == again for d in store.decisions(child=child)):
                session.flash_error(f"Referral {again} was sent already; nothing more was sent.")
                return desk.redirect(f"/child/{child}", session)
            records = store.records_about(child)
            event = referral_event(
                party=deps.party, records=records, child=child, secret=deps.linkage_key,
                reason=reason, at=now,
            )  # fmt: skip
            if withdrawn or event is None or deps.publisher is None:
                if again:
                    log.warning("desk_referral_not_sent_again", event_id=again)
                session.flash_error(_not_referred(again, withdrawn=bool(withdrawn)), field="action")
                return desk.redirect(f"/child/{child}", session)
            if again:  # the same event as the attempt given up on (broker.desk._resend)
                event["event_id"], event["reference"] = again, f"DESK-{again[:8].upper()}"
            try:
                await deps.publisher.publish(event)
            except AccordError as exc:
                log.error("desk_referral_failed", error=type(exc).__name__)  # noqa: TRY400  # as above
                return not_sent(
                    session, exc, "referral", reason, action=f"/child/{child}/decide",
                    event_id=event["event_id"], check="ask the hub whether it arrived",
                    fields=[("action", action), ("reason", reason)]
                    + [("flag", f) for f in settles],
                )  # fmt: skip
            published = event["event_id"]
        store.decide(
            action=action, reason=reason, by=user, at=now, flag_ids=settles,
            child=child, published_event=published,
        )  # fmt: skip
        log.info("desk_decision", action=action, by=user, flags=len(settles))
        settled = f"It settles {len(settles)} flag(s)." if settles else "It settles no flag."
        if withdrawn:
            settled += (
                f" {withdrawn} flag(s) ticked had all their records withdrawn: no decision "
                "about the child settles them; close them with “Close: its records were "
                "withdrawn”."
            )
        session.flash_success(
            f"Referral {published} sent through the broker: the broker decides who receives "
            f"it. {settled}" if published
            else f"Decision recorded: {action.replace('_', ' ')}. {settled}"
        )  # fmt: skip
        return desk.redirect(f"/child/{child}", session)

    @app.get("/referral/{event_id}", response_class=HTMLResponse)
    async def referral_page(request: Request, event_id: str) -> Response:
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        record = named(event_id, "hub", REFERRAL_TYPE)
        if record is None:
            return desk.refused("No such referral.", status=404)
        try:
            await viewed([record], session.user)
        except _NoAck:
            return no_ack()
        return desk.render(
            "referral.html", session, title="Referral", record=record,
            decisions=store.decisions(subject_event=event_id), outcomes=HUB_OUTCOMES,
            names=deps.party_names,
        )  # fmt: skip

    @app.post("/referral/{event_id}/outcome")
    async def record_outcome(request: Request, event_id: str) -> Response:  # noqa: PLR0911  # as above
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        form = await checked_form(request, session)
        if form is None:
            return desk.refused("Missing or wrong form token.")
        record = named(event_id, "hub", REFERRAL_TYPE)
        if record is None:
            return desk.refused("No such referral.", status=404)
        outcome = form_field(form, "outcome") or ""
        summary = (form_field(form, "summary") or "").strip()
        if outcome not in HUB_OUTCOMES or not summary or len(summary) > _MAX_REASON:
            session.flash_error(
                "Choose an outcome and give a summary (up to 2000 characters).",
                field="outcome" if outcome not in HUB_OUTCOMES else "summary",
            )
            return desk.redirect(f"/referral/{event_id}")
        if record.hidden or deps.publisher is None:
            session.flash_error("This referral cannot be answered from here.")
            return desk.redirect(f"/referral/{event_id}")
        # One outcome per referral: a double click, a second tab or a colleague's page still
        # open would otherwise send the team another, perhaps contrary, one. Checked again
        # while a send is under way (the send awaits Kafka).
        if event_id in answering or _answered(store, event_id):
            session.flash_error("This referral has an outcome already; nothing was sent.")
            return desk.redirect(f"/referral/{event_id}")
        good, again = resent(form, f"/referral/{event_id}/outcome", session.user)
        if not good:
            return desk.refused("Missing or wrong form token.")
        answering.add(event_id)
        try:
            now = deps.clock()
            event = outcome_event(
                party=deps.party, referral=record, outcome=outcome, summary=summary, at=now
            )
            if again:  # the same event as the attempt given up on (broker.desk._resend)
                event["event_id"] = again
            try:
                await deps.publisher.publish(event)
            except AccordError as exc:
                log.error("desk_outcome_failed", error=type(exc).__name__)  # noqa: TRY400  # as above
                return not_sent(
                    session, exc, "outcome", summary, action=f"/referral/{event_id}/outcome",
                    event_id=event["event_id"], fields=[("outcome", outcome), ("summary", summary)],
                    check="ask the co-ordinating team whether it arrived",
                )  # fmt: skip
            store.decide(
                action=outcome, reason=summary, by=session.user, at=now, subject_event=event_id,
                published_event=event["event_id"],
            )  # fmt: skip
        finally:
            answering.discard(event_id)
        session.flash_success(
            f"Outcome {outcome.replace('_', ' ')} sent through the broker to the referring team."
        )
        return desk.redirect(f"/referral/{event_id}", session)

    @app.get("/notice/{event_id}", response_class=HTMLResponse)
    async def notice_page(request: Request, event_id: str) -> Response:
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        record = named(event_id, "school", ENCOMPASS_TYPE)
        if record is None:
            return desk.refused("No such notice.", status=404)
        try:
            await viewed([record], session.user)
        except _NoAck:
            return no_ack()
        notice = encompass_notice(
            record, store.encompass_ack(event_id), calendar=deps.schools, now=deps.clock()
        )
        return desk.render(
            "notice.html", session, title="Encompass notice", notice=notice,
            names=deps.party_names,
        )  # fmt: skip

    @app.post("/notice/{event_id}/acknowledge")
    async def acknowledge_notice(request: Request, event_id: str) -> Response:
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        form = await checked_form(request, session)
        if form is None:
            return desk.refused("Missing or wrong form token.")
        record = named(event_id, "school", ENCOMPASS_TYPE)
        if record is None:
            return desk.refused("No such notice.", status=404)
        if not record.hidden and store.encompass_ack(event_id) is None:
            try:
                await viewed([record], session.user)
            except _NoAck:
                return no_ack()
            store.acknowledge_encompass(event_id, session.user, deps.clock())
            session.flash_success("Notice acknowledged as read; the broker has recorded it.")
        return desk.redirect(f"/notice/{event_id}", session)

    async def acknowledged(records: Sequence[StoredRecord], user: str) -> bool:
        try:
            await viewed(records, user)
        except _NoAck:
            return False
        return True

    register_flag_close(app, desk, team_form=team_form)
    register_record_pages(
        app, desk, signed_in=signed_in, checked_form=checked_form, acknowledged=acknowledged,
        no_ack=no_ack,
    )  # fmt: skip
