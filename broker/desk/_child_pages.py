"""A co-ordinating team's child: the timeline page (``GET /child/<child>``, ``/flag/<id>``) and
its decision form (``POST /child/<child>/decide``).

A decision refused for something the person can put right (no decision chosen, no reason or
one too long, a referral that cannot be built, a ticked flag withdrawn since, a referral sent
already) is answered by drawing the timeline again in place, 400 or 409, with the problem in
the error summary and the form as it was posted: the decision chosen, the reason typed, the
flags ticked. What was typed lives in that one response only: never in the session, its
flash, an address or a log. A success is still Post/Redirect/Get.

A re-send (:mod:`broker.desk._resend`) refused is not drawn into that form, whose every field
can be changed: the same event id must carry the same words, or the hub keeps the first
attempt's reason while this desk records another. It is answered with its own page again,
everything on it as it was (``not_sent.html``), saying why; sent already, with the timeline
and a fresh form, so that a later referral from it is a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._flag import household_key
from broker.desk._form_text import unfinished, written
from broker.desk._page_kit import ID, PageKit
from broker.desk._record_sent import Retries, referral_fields, referral_recorder
from broker.desk._resend import altered, not_again
from broker.desk._show import local_time, person_name
from broker.desk._store import (
    RECORDS_WITHDRAWN,
    TEAM_ACTIONS,
    DeskStore,
    StoredDecision,
    StoredFlag,
    StoredRecord,
)
from broker.desk._work import child_subject, referral_event
from broker.errors import AlreadySettled, RecordedAlready, StoreBusy, StoreUnavailable
from broker.webauth import Flash, Session, form_field, refused_in_place

__all__ = ["outcomes_of", "register_child_pages"]

log = structlog.get_logger("accord.desk")

# The decision form's checkboxes, within read_form's 16 fields (with csrf, action, reason,
# resend).
_MAX_FLAGS_SETTLED = 12
_BUSY = "The desk's database is busy (another desk process is holding it): nothing was recorded."

TeamForm = Callable[[Request, str], Awaitable[tuple[Session, str, Any, str] | Response]]
#: Sends a referral or outcome (session, publisher, event, what, its text; its form's address,
#: fields and what to check): None once sent, else its not-sent page.
Publish = Callable[..., Awaitable[HTMLResponse | None]]
#: The re-send token's check (form, its address, user, its content as posted): whether it is
#: good (or absent) and the event id it carries.
Resent = Callable[[Any, str, str, Sequence[tuple[str, str]]], tuple[bool, str | None]]


def outcomes_of(store: DeskStore, decision: StoredDecision) -> list[StoredRecord]:
    """A referral's outcomes as the team may see them: none whose consent was withdrawn."""
    return [o for o in store.replies_to(decision.published_event or "") if not o.hidden]


def _flag_marks(flags: Sequence[StoredFlag]) -> dict[str, list[tuple[StoredFlag, bool]]]:
    """Per record, the flags that counted it, each with whether the record triggered it."""
    marks: dict[str, list[tuple[StoredFlag, bool]]] = {}
    for f in flags:
        for event_id in f.event_ids:
            marks.setdefault(event_id, []).append((f, event_id == f.trigger_event_id))
    return marks


_NOT_ITS_FLAG = (
    "A flag this form names is not one of this child's: nothing was recorded. Load the "
    "child's page again and tick the flags this decision settles."
)


def _not_referred(*, withdrawn: bool) -> str:
    """Why a referral was refused. Withdrawn: a ticked flag's records may not be used to
    refer (a page loaded before the withdrawal)."""
    if withdrawn:
        return (
            "A flag whose records have all been withdrawn cannot be settled by a referral: "
            "close it with “Close: its records were withdrawn”. Nothing was sent."
        )
    return "This desk cannot send a referral for this child."


def _settled_since(
    flags: Sequence[StoredFlag], decisions: Sequence[StoredDecision], zone: ZoneInfo,
    *, ending: str = " Nothing was recorded or sent: read that decision below before "
    "deciding again.",
) -> str:  # fmt: skip
    """Why a decision ticking flags settled since its page was loaded (a second tab, a
    colleague) is refused: by whom, when and how each was settled, so that nobody records a
    second, perhaps contrary, decision about the same flag unawares."""
    said = []
    for f in flags:
        by = next((d for d in reversed(decisions) if f.flag_id in d.flag_ids), None)
        if by is None:  # settled, but not by a decision this desk holds about the child
            said.append(f"The flag “{f.title}” was settled after this page was loaded.")
            continue
        how = (
            "closed: its records were withdrawn" if by.action == RECORDS_WITHDRAWN
            else by.action.replace("_", " ")
        )  # fmt: skip
        said.append(
            f"The flag “{f.title}” was settled by {by.decided_by} at "
            f"{local_time(by.decided_at, zone)} ({how}) after this page was loaded."
        )
    return " ".join(said) + ending


class _Turns:
    """One holder at a time per child: an asyncio lock for each child someone is deciding
    about now, dropped when its last holder or waiter leaves, so that the map holds no more
    locks than there are requests under way."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def one(self, child: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(child, (asyncio.Lock(), 0))
        self._locks[child] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:  # a request cancelled while it waits leaves too
            lock, users = self._locks.pop(child)
            if users > 1:
                self._locks[child] = (lock, users - 1)


def register_child_pages(  # noqa: PLR0915  # one route each
    app: FastAPI,
    kit: PageKit,
    *,
    team_form: TeamForm,
    resent: Resent,
    not_sent: Callable[..., HTMLResponse],
    publish: Publish,
    retries: Retries,
) -> None:
    desk = kit.desk
    deps = desk.deps
    store = deps.store
    turns = _Turns()

    def settled_first(child: str, flag_ids: Collection[str], **ending: str) -> str:
        """Why the store refused a decision: ``flag_ids``, settled by another first."""
        since = [f for f in store.flags() if f.child == child and f.flag_id in flag_ids]
        return _settled_since(
            since, store.decisions(child=child), ZoneInfo(deps.schools.timezone), **ending
        )

    def settle_what_is_left(
        record: Callable[..., object], settles: Sequence[str], *, published: str | None
    ) -> list[str]:
        """Record the decision, settling ``settles``; raises :class:`AlreadySettled` if the
        store refuses it for a flag another desk process on the store settled first. A
        referral published already went and cannot be called back: it is recorded as sent,
        settling the flags nobody else settled (so that it is shown with its outcomes, and a
        re-send of it is answered "sent already"); returned, those it does not settle."""
        taken: list[str] = []
        while True:  # each refusal takes one flag or more away: it ends
            try:
                record(flag_ids=[f for f in settles if f not in taken])
            except AlreadySettled as exc:
                if published is None:
                    raise
                taken += exc.flag_ids
                continue
            return taken

    def sent_but_settled(
        session: Session, child: str, published: str, settles: Sequence[str],
        taken: Sequence[str],
    ) -> Response:  # fmt: skip
        """A referral recorded as sent, some or all of its flags having been settled first
        by another decision: the person is told what it settles and what the other did."""
        log.warning("desk_referral_sent_flags_settled", event_id=published)
        titles = {f.flag_id: f.title for f in store.flags() if f.child == child}
        left = [f"“{titles.get(f, f)}”" for f in settles if f not in taken]
        ending = (
            " The referral is recorded as sent and settles the flag(s) nobody else settled: "
            + ", ".join(left) + "." if left
            else " The referral is recorded as sent and settles no flag."
        )  # fmt: skip
        session.flash_error(
            f"Referral {published} was sent through the broker, but meanwhile another "
            f"decision settled {'some of its flags' if left else 'its flags'}. " + settled_first(
                child, taken, ending=ending + " Read that decision below."
            )
        )  # fmt: skip
        return desk.redirect(f"/child/{child}", session)

    record_sent, unrecorded = referral_recorder(
        desk, retries=retries, turns=turns, valid_id=ID.fullmatch, settle=settle_what_is_left,
        sent_but_settled=sent_but_settled, not_sent=not_sent, written=written,
    )  # fmt: skip

    async def timeline(
        session: Session, child: str, *, flag: str | None = None, status: int = 200,
        errors: Sequence[Flash] = (), typed: dict[str, Any] | None = None,
    ) -> Response:  # fmt: skip
        """The child's page, acknowledged as viewed first; ``typed``: a refused decision's
        form as it was posted, drawn again with ``errors``."""
        records = store.records_about(child)
        if not records:
            return desk.refused(
                "No record about this child is held here.", status=404, title="Child not found"
            )
        referrals = [
            (d, outcomes_of(store, d)) for d in store.decisions(child=child) if d.action == "refer"
        ]
        flags = [f for f in store.flags() if f.child == child]
        # A household rule's flag also names records about the other children at the
        # child's address: shown (and acknowledged) beside the child's own, as the team
        # must see what made the flag fire.
        own = {r.event_id for r in records}
        household = _household_records(store, flags, own, deps.linkage_key)
        # An outcome may name the child by other fields than the team's records (a hub need
        # not hold the NHS number): shown with its referral, so acknowledged with the rest.
        shown = {r.event_id: r for r in [*records, *household]}
        shown.update({o.event_id: o for _, outcomes in referrals for o in outcomes})
        if not await kit.acknowledged(list(shown.values()), session.user or ""):
            return kit.no_ack()
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
            "child.html", session, status=status, errors=errors, typed=typed,
            title="A child's timeline", child=child, records=records,
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

    @app.get("/child/{child}", response_class=HTMLResponse)
    async def child_page(request: Request, child: str, flag: str | None = None) -> Response:
        session = kit.signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        if deps.kind != "coordinating_team" or not ID.fullmatch(child):
            return desk.refused("No such page.", status=404, title="Page not found")
        if (now := store.current_child(child)) != child:  # a key from before 2026-12-05
            return desk.redirect(f"/child/{now}" + (f"?flag={flag}" if flag else ""))
        return await timeline(session, child, flag=flag)

    @app.get("/flag/{flag_id}")
    async def flag_page(request: Request, flag_id: str) -> Response:
        session = kit.signed_in(request)
        if session is None:
            return desk.redirect("/login")
        found = store.flag(flag_id) if ID.fullmatch(flag_id) else None
        if found is None:
            return desk.refused("No such flag.", status=404, title="Flag not found")
        return desk.redirect(f"/child/{found.child}?flag={found.flag_id}")

    @app.post("/child/{child}/decide")
    async def decide(request: Request, child: str) -> Response:  # noqa: PLR0915  # one form, every answer
        if isinstance(got := await team_form(request, child), Response):
            return got
        session, user, form, child = got
        if form_field(form, "record") is not None:  # sent already: recorded, not sent again
            return await record_sent(session, user, form, child)
        page = f"/child/{child}/decide"
        action = form_field(form, "action") or ""
        typed_reason = form_field(form, "reason") or ""
        reason = written(typed_reason)
        # The flags ticked on the form: any not this child's refuses the form (in settle).
        posted = [v for v in form.getlist("flag") if isinstance(v, str) and ID.fullmatch(v)]
        fields = referral_fields(action, reason, posted)
        good, again = resent(form, page, user, fields)
        check = "ask the hub whether it arrived"

        # Drawn again as posted, but never with a re-send's token (module docstring);
        # ``fresh``: the form as a new page has it, the referral having gone.
        typed = {"action": action, "reason": typed_reason, "flags": set(posted)}
        refused = refused_in_place(partial(timeline, session, child), typed)

        if wrong := unfinished(
            action, TEAM_ACTIONS, reason, field="action", what="reason",
            choose="Choose a decision",
        ):  # fmt: skip  # each field at fault its own error (._form_text)
            return await timeline(session, child, status=400, errors=wrong, typed=typed)

        # One decision about a child at a time, from the check below to the store: another
        # for the same flag, posted while a referral is being published, would pass the
        # check too. The store refuses one that does (another desk process on it). A refusal
        # drawn in place is returned undrawn, and drawn after the turn: the page acknowledges
        # access through Kafka, which another decision about the child need not wait for.
        async def settle() -> Response | Awaitable[Response]:  # noqa: PLR0911, PLR0912  # each refusal its own page
            ticked_flags = [f for f in store.flags() if f.child == child and f.flag_id in posted]
            if len(ticked_flags) != len(set(form.getlist("flag"))):
                # A flag the page never offers (another child's, or no flag id at all):
                # refused whole, as an unknown decision is, not recorded without it.
                return refused(_NOT_ITS_FLAG)
            # A flag settled since the page was loaded (another tab, a colleague) is not settled
            # again: two decisions, perhaps contrary, would stand against one flag.
            # A re-send changed, or its referral sent already, is answered as such below.
            answered = bool(again) and action == "refer" and (
                not good or any(d.published_event == again for d in store.decisions(child=child))
            )  # fmt: skip
            if (since := [f for f in ticked_flags if f.decided]) and not answered:
                said = _settled_since(
                    since, store.decisions(child=child), ZoneInfo(deps.schools.timezone)
                )
                if again and action == "refer":
                    return not_sent(
                        session, None, "referral", reason,
                        action=page, event_id=again, check=check, fields=fields,
                        cause="permanent", refused=not_again(
                            again, "a flag it settles has been settled since"
                        ) + " " + said,
                    )  # fmt: skip
                return refused(said, status=409)
            # No decision about the child settles a flag whose records have all been withdrawn
            # (the page says so): one loaded before the withdrawal still ticks it.
            settles = [f.flag_id for f in ticked_flags if not f.withdrawn]
            withdrawn = len(ticked_flags) - len(settles)
            # What a not-sent page's button sends again: the flags this decision settles.
            resend = referral_fields(action, reason, settles)
            now = deps.clock()
            published = None
            if action == "refer":
                # A re-send first: what is said of it must not deny the attempt it repeats.
                if not good:
                    return desk.refused(altered("referral"))
                if again and any(d.published_event == again for d in store.decisions(child=child)):
                    return refused(
                        f"Referral {again} was sent already; nothing more was sent.", status=409,
                        fresh=True,
                    )  # fmt: skip
                records = store.records_about(child)
                event = referral_event(
                    party=deps.party, records=records, child=child, secret=deps.linkage_key,
                    reason=reason, at=now,
                )  # fmt: skip
                if again and (withdrawn or event is None or deps.publisher is None):
                    log.warning("desk_referral_not_sent_again", event_id=again)
                    # The same page again, its words and event id unchanged; a flag withdrawn
                    # since is left out, as the decision form leaves it out, so that the button
                    # can send the rest once the person has read why.
                    cannot = event is None or deps.publisher is None
                    return not_sent(
                        session, None, "referral", reason, action=page, event_id=again,
                        check=check, fields=resend,
                        left_out=0 if cannot else withdrawn, cause="permanent" if cannot else "",
                        refused=not_again(
                            again, "this desk cannot send a referral for this child now" if cannot
                            else "a flag it settles has had all its records withdrawn since",
                        ),
                    )  # fmt: skip
                if withdrawn or event is None or deps.publisher is None:
                    return refused(
                        _not_referred(withdrawn=bool(withdrawn)), field="action", status=409
                    )
                if again:  # the same event as the attempt given up on (broker.desk._resend)
                    event["event_id"], event["reference"] = again, f"DESK-{again[:8].upper()}"
                unsent = await publish(
                    session, deps.publisher, event, "referral", reason, action=page,
                    fields=resend, check=check,
                )  # fmt: skip
                if unsent is not None:
                    return unsent
                published = event["event_id"]
            record = partial(
                store.decide, action=action, reason=reason, by=user, at=now, child=child,
                published_event=published,
            )  # fmt: skip
            try:
                taken = settle_what_is_left(record, settles, published=published)
            except AlreadySettled as exc:  # by another desk process on the store
                return refused(settled_first(child, exc.flag_ids), status=409)
            except RecordedAlready:  # a re-send another desk process recorded meanwhile
                return refused(
                    f"Referral {published} was sent already; nothing more was sent.",
                    status=409, fresh=True,
                )  # fmt: skip
            except (StoreBusy, StoreUnavailable) as exc:  # nothing recorded, or not known
                if published is None:
                    if isinstance(exc, StoreUnavailable):
                        raise  # nothing was sent: the page that says the database is away
                    return refused(f"{_BUSY} Try again in a moment.", status=503)
                return unrecorded(
                    session, child=child, event_id=published, action=action, reason=reason,
                    by=user, sent_at=now, settles=settles,
                )  # fmt: skip
            if published and taken:
                return sent_but_settled(session, child, published, settles, taken)
            log.info("desk_decision", action=action, by=user, flags=len(settles))
            settled = f"It settles {len(settles)} flag(s)." if settles else "It settles no flag."
            settled += (
                f" {withdrawn} flag(s) ticked had all their records withdrawn: no decision "
                "about the child settles them; close them with “Close: its records were "
                "withdrawn”." if withdrawn else ""
            )  # fmt: skip
            session.flash_success(
                f"Referral {published} sent through the broker: the broker decides who "
                f"receives it. {settled}" if published
                else f"Decision recorded: {action.replace('_', ' ')}. {settled}"
            )  # fmt: skip
            return desk.redirect(f"/child/{child}", session)

        async with turns.one(child):
            answer = await settle()
        return answer if isinstance(answer, Response) else await answer


def _household_records(
    store: DeskStore, flags: Sequence[StoredFlag], own: set[str], secret: bytes
) -> list[StoredRecord]:
    """The records a household flag of the child counted that are about other children at
    its address: held here, and about that household.

    Only a household flag counts other children's records: any other flag's record not about
    this child is one not stored yet, or another agency's under an id two agencies chose
    alike (``_store_taken``), held here about another child; so is a household flag's record
    whose view gives another address. Either is "a record this desk does not hold": never
    another child's name and NHS number on this child's page (review s44e)."""
    counted = {i: f.household for f in flags if f.household for i in f.event_ids if i not in own}
    taken = store.taken_among(counted)
    shown = []
    for event_id, household in counted.items():
        if event_id in taken or (found := store.record(event_id)) is None:
            continue
        subjects = [s for s in found.view.get("subjects") or () if isinstance(s, dict)]
        keys = {household_key(secret, s) for s in subjects} - {None}
        if keys and household not in keys:
            continue  # its view places it elsewhere (without an address, its placement stands)
        shown.append(found)
    return shown
