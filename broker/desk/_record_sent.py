"""A referral or outcome sent but not recorded (the desk's database was busy): recorded by
its page's button, Record it, and meanwhile by the desk itself, in the background.

Either way nothing is checked or sent again, since the event went whatever happened since
(a flag settled or a referral answered since cannot call it back), and the decision is
recorded at the time the event was sent (its occurred_at, carried under the page's MAC), so
that records which arrived after the send are still new since the decision. The store takes
one decision per published event (``desk_decisions_published_once``): a second press, another
desk process or the background retry finds it recorded already (:class:`RecordedAlready`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi.responses import HTMLResponse, Response

from broker.desk._app import Desk
from broker.desk._resend import record_altered, recorded_id
from broker.desk._show import local_time
from broker.desk._store import HUB_OUTCOMES
from broker.errors import RecordedAlready, StoreBusy, StoreUnavailable
from broker.webauth import Session, form_field

__all__ = [
    "RETRY_FOR_SECONDS",
    "RETRY_MOST_SECONDS",
    "RETRY_SECONDS",
    "RETRY_WAIT_SECONDS",
    "Retries",
    "outcome_recorder",
    "referral_fields",
    "referral_recorder",
]

log = structlog.get_logger("accord.desk")

#: How soon, at most how often, and for how long the desk tries again by itself to record
#: what it sent: after RETRY_SECONDS, then twice as long after each busy try, up to
#: RETRY_MOST_SECONDS apart, for RETRY_FOR_SECONDS.
RETRY_SECONDS = 5.0
RETRY_MOST_SECONDS = 60.0
RETRY_FOR_SECONDS = 600.0
#: How long a background try waits for another desk process's hold on the database: briefly.
#: The store's calls are synchronous on the desk's one event loop, so a try that waited the
#: store's 5 s would stall every page (sign-in included) for as long; one that did not wait
#: at all would lose to another process writing steadily (it finds the lock free only in the
#: gaps between that one's writes) and give up with the referral unrecorded. Busy after
#: this, it is tried again later.
RETRY_WAIT_SECONDS = 0.05


class Retries:
    """Sent events the busy database did not take, tried again in this desk process for
    :data:`RETRY_FOR_SECONDS`: a person signed out (idle timeout, a restart of another
    process) may never press Record it, and a referral nobody recorded looks like one never
    made. One task per event, one try at a time across them (each waiting for the database
    at most :data:`RETRY_WAIT_SECONDS`), backing off while it is busy; logged by event id
    only."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._one_at_a_time = asyncio.Lock()

    def start(self, event_id: str, attempt: Callable[[], Awaitable[object]]) -> None:
        if event_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._keep_trying(event_id, attempt))
        self._tasks[event_id] = task  # held: the loop keeps only a weak reference
        task.add_done_callback(lambda _: self._tasks.pop(event_id, None))

    async def _keep_trying(self, event_id: str, attempt: Callable[[], Awaitable[object]]) -> None:
        try:
            await self._tries(event_id, attempt)
        except asyncio.CancelledError:
            # The desk stopping: only the button (or the recipient) can tell now. No
            # traceback: a cancellation's says nothing more.
            log.error("desk_sent_record_retry_gave_up", event_id=event_id, why="stopping")  # noqa: TRY400
            raise

    async def _tries(self, event_id: str, attempt: Callable[[], Awaitable[object]]) -> None:
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        pause = RETRY_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, RETRY_MOST_SECONDS)
            try:
                async with self._one_at_a_time:
                    await attempt()
            except (StoreBusy, StoreUnavailable):  # the database back within the time, maybe
                continue
            except RecordedAlready:  # Record it, or another desk process, was first
                log.info("desk_sent_recorded_already", event_id=event_id)
                return
            except Exception as exc:  # noqa: BLE001  # the task's end: said, never raised into the loop
                error = type(exc).__name__  # no traceback: it may hold personal data
                log.error("desk_sent_record_retry_failed", event_id=event_id, error=error)  # noqa: TRY400
                return
            log.info("desk_sent_recorded", event_id=event_id, by_retry=True)
            return
        log.error("desk_sent_record_retry_gave_up", event_id=event_id, why="timeout")


RecordReferral = Callable[[Session, str, Any, str], Awaitable[Response]]


def referral_recorder(
    desk: Desk, *, retries: Retries, turns: Any, valid_id: Callable[[str], object],
    settle: Callable[..., list[str]],
    sent_but_settled: Callable[[Session, str, str, Sequence[str], Sequence[str]], Response],
    not_sent: Callable[..., HTMLResponse], written: Callable[[str], str],
) -> tuple[RecordReferral, Callable[..., HTMLResponse]]:  # fmt: skip
    """Record it for a referral (``POST /child/<child>/decide`` with a ``record`` field), and
    the answer to one the busy database did not take (``unrecorded``)."""
    deps = desk.deps
    store = deps.store

    def unrecorded(
        session: Session, *, child: str, event_id: str, action: str, reason: str, by: str,
        sent_at: datetime, settles: Sequence[str],
    ) -> HTMLResponse:  # fmt: skip
        """A referral sent but not recorded: logged, tried again in the background, and its
        page, whose button records it."""
        log.error("desk_referral_sent_not_recorded", event_id=event_id)
        record = partial(
            store.decide, action=action, reason=reason, by=by, at=sent_at, child=child,
            published_event=event_id,
        )  # fmt: skip

        async def attempt() -> None:
            async with turns.one(child):
                tried = partial(record, wait_seconds=RETRY_WAIT_SECONDS)
                if settle(tried, settles, published=event_id):
                    log.warning("desk_referral_sent_flags_settled", event_id=event_id)

        retries.start(event_id, attempt)
        page = f"/child/{child}/decide"
        return not_sent(
            session, None, "referral", reason, action=page, event_id=event_id,
            check="ask the hub whether it arrived", fields=referral_fields(action, reason, settles),
            cause="unrecorded", sent_at=sent_at,
        )  # fmt: skip

    async def record_referral(session: Session, user: str, form: Any, child: str) -> Response:
        page = f"/child/{child}/decide"
        action, reason = form_field(form, "action") or "", written(form_field(form, "reason") or "")
        settles = [v for v in form.getlist("flag") if isinstance(v, str) and valid_id(v)]
        fields = referral_fields(action, reason, settles)
        got = recorded_id(
            deps.device_key, form_field(form, "record"), party=deps.party, form=page, user=user,
            fields=fields, sent=form_field(form, "sent"),
        )  # fmt: skip
        if got is None or action != "refer":
            return desk.refused(record_altered("referral"))
        sent, sent_at = got
        record = partial(
            store.decide, action=action, reason=reason, by=user, at=sent_at, child=child,
            published_event=sent,
        )  # fmt: skip
        async with turns.one(child):  # not between another decision's check and its record
            try:
                taken = settle(record, settles, published=sent)
            except RecordedAlready:
                session.flash_success(
                    f"Referral {sent} was sent through the broker and is recorded already; "
                    "nothing more was recorded."
                )
                return desk.redirect(f"/child/{child}", session)
            except (StoreBusy, StoreUnavailable):  # still: the same page, as true as it was
                return unrecorded(
                    session, child=child, event_id=sent, action=action, reason=reason, by=user,
                    sent_at=sent_at, settles=settles,
                )  # fmt: skip
        if taken:
            return sent_but_settled(session, child, sent, settles, taken)
        log.info("desk_sent_recorded", event_id=sent)
        settled = f"It settles {len(settles)} flag(s)." if settles else "It settles no flag."
        session.flash_success(
            f"Referral {sent} was sent through the broker; it is now recorded. Nothing was sent "
            f"again. {settled}"
        )
        return desk.redirect(f"/child/{child}", session)

    return record_referral, unrecorded


def referral_fields(action: str, reason: str, settles: Sequence[str]) -> list[tuple[str, str]]:
    """A referral's fields under its page's MAC: the decision, its reason, the flags it
    settles."""
    return [("action", action), ("reason", reason), *(("flag", f) for f in settles)]


def outcome_recorder(
    desk: Desk, *, retries: Retries, not_sent: Callable[..., HTMLResponse]
) -> tuple[Callable[..., Response], Callable[..., HTMLResponse]]:
    """Record it for an outcome (``POST /referral/<id>/outcome`` with a ``record`` field),
    and the answer to one the busy database did not take (``unrecorded``)."""
    deps = desk.deps
    store = deps.store

    def unrecorded(
        session: Session, *, referral: str, event_id: str, outcome: str, summary: str, by: str,
        sent_at: datetime,
    ) -> HTMLResponse:  # fmt: skip
        """An outcome sent but not recorded: logged, tried again in the background, and its
        page, whose button records it."""
        log.error("desk_outcome_sent_not_recorded", event_id=event_id)

        async def attempt() -> None:
            store.decide(
                action=outcome, reason=summary, by=by, at=sent_at, subject_event=referral,
                published_event=event_id, wait_seconds=RETRY_WAIT_SECONDS,
            )  # fmt: skip
            if _others(referral, event_id):
                log.warning("desk_outcome_sent_beside_another", event_id=event_id)

        retries.start(event_id, attempt)
        return not_sent(
            session, None, "outcome", summary, action=f"/referral/{referral}/outcome",
            event_id=event_id, fields=[("outcome", outcome), ("summary", summary)],
            check="ask the co-ordinating team whether it arrived", cause="unrecorded",
            sent_at=sent_at,
        )  # fmt: skip

    def _others(referral: str, sent: str) -> list[Any]:
        return [
            d for d in store.decisions(subject_event=referral)
            if d.action in HUB_OUTCOMES and d.published_event != sent
        ]  # fmt: skip

    def record_outcome(
        session: Session, user: str, page: str, form: Any, fields: Sequence[tuple[str, str]],
        *, referral: str,
    ) -> Response:  # fmt: skip
        got = recorded_id(
            deps.device_key, form_field(form, "record"), party=deps.party, form=page, user=user,
            fields=fields, sent=form_field(form, "sent"),
        )  # fmt: skip
        if got is None:
            return desk.refused(record_altered("outcome"))
        sent, sent_at = got
        (_, outcome), (_, summary) = fields
        said = f"Outcome {outcome.replace('_', ' ')} (event {sent}) was sent through the broker"
        try:
            store.decide(
                action=outcome, reason=summary, by=user, at=sent_at, subject_event=referral,
                published_event=sent,
            )  # fmt: skip
        except RecordedAlready:
            session.flash_success(f"{said} and is recorded already; nothing more was recorded.")
            return desk.redirect(f"/referral/{referral}", session)
        except (StoreBusy, StoreUnavailable):  # still: the same page, as true as it was
            return unrecorded(
                session, referral=referral, event_id=sent, outcome=outcome, summary=summary,
                by=user, sent_at=sent_at,
            )  # fmt: skip
        log.info("desk_sent_recorded", event_id=sent)
        if others := _others(referral, sent):
            # Recorded all the same (it went): the team has received both, and must hear
            # which stands from a person.
            log.warning("desk_outcome_sent_beside_another", event_id=sent)
            zone = ZoneInfo(deps.schools.timezone)
            named = "; ".join(
                f"{d.action.replace('_', ' ')} by {d.decided_by} at "
                f"{local_time(d.decided_at, zone)}" for d in others
            )  # fmt: skip
            session.flash_error(
                f"{said}; it is now recorded. Nothing was sent again. But another outcome for "
                f"this referral was sent and recorded too ({named}): the co-ordinating team "
                "has received both. Contact the team to say which outcome stands."
            )
            return desk.redirect(f"/referral/{referral}", session)
        session.flash_success(f"{said}; it is now recorded. Nothing was sent again.")
        return desk.redirect(f"/referral/{referral}", session)

    return record_outcome, unrecorded
