"""Closing a flag whose records have all been withdrawn: ``POST /child/<child>/close-withdrawn``.

Such a flag says nothing about the child any more (consent withdrawn), so closing it must not
need a decision about the child (refer, signpost, no further action, escalate), and least of
all a referral the moment the family withdrew consent. The team closes it as what it is:
recorded in the desk's store like every team decision, with who and when, under its own
action (``records_withdrawn``) and a fixed reason, settling that flag alone; no referral, no
event through the broker (a team's decisions other than a referral never travel: they are
the desk's own record). The desk logs it as it logs a decision, ``desk_decision`` with the
action, the person and the count of flags.

Only a flag whose every record a withdrawal notice named (``StoredFlag.withdrawn``, from the
desk's own list of withdrawn ids) can be closed so, whether or not the flag service takes it
back (``withdrawable``): that only decides whether it still stops a new flag under its rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response

from broker.desk._app import Desk
from broker.desk._store import RECORDS_WITHDRAWN
from broker.errors import AlreadySettled, StoreBusy
from broker.webauth import Session, form_field

__all__ = ["WITHDRAWN_REASON", "register_flag_close"]

log = structlog.get_logger("accord.desk")

#: The reason kept with the closure: what the desk knows, in the team's words.
WITHDRAWN_REASON = (
    "Closed because every record it was raised on was withdrawn (consent withdrawn); "
    "no decision about the child."
)


def register_flag_close(
    app: FastAPI,
    desk: Desk,
    *,
    team_form: Callable[[Request, str], Awaitable[tuple[Session, str, Any, str] | Response]],
) -> None:
    deps = desk.deps
    store = deps.store

    @app.post("/child/{child}/close-withdrawn")
    async def close_withdrawn(request: Request, child: str) -> Response:
        if isinstance(got := await team_form(request, child), Response):
            return got
        session, user, form, child = got
        wanted = form_field(form, "flag") or ""
        # This child's flag only, open, and with every record withdrawn: checked now, not as
        # the page showed it.
        found = next((f for f in store.flags() if f.child == child and f.flag_id == wanted), None)
        cannot = (
            "That flag cannot be closed this way: only an open flag whose records have "
            "all been withdrawn can."
        )
        if found is None or found.decided or not found.withdrawn:
            session.flash_error(cannot)
            return desk.redirect(f"/child/{child}", session)
        try:
            store.decide(
                action=RECORDS_WITHDRAWN, reason=WITHDRAWN_REASON, by=user,
                at=deps.clock(), flag_ids=[found.flag_id], child=child,
            )  # fmt: skip
        except AlreadySettled:  # by another desk process on the store, since the check
            session.flash_error(cannot)
            return desk.redirect(f"/child/{child}", session)
        except StoreBusy:  # another desk process holds the database
            session.flash_error(
                "The desk's database is busy (another desk process is holding it): the flag "
                "was not closed. Try again in a moment."
            )
            return desk.redirect(f"/child/{child}", session)
        log.info("desk_decision", action=RECORDS_WITHDRAWN, by=user, flags=1)
        session.flash_success(
            f"Flag “{found.title}” closed: its records were withdrawn. No referral was made "
            "and nothing was decided about the child."
        )
        return desk.redirect(f"/child/{child}", session)
