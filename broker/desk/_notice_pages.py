"""A school's Operation Encompass notice: ``/notice/<id>`` and its acknowledgement.

Opening the notice sends its access acknowledgement first (no acknowledgement, no notice);
acknowledging it as read is recorded once, by whoever did, and says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._app import Desk
from broker.desk._record_pages import Acknowledged
from broker.desk._stored import StoredRecord
from broker.desk._work import ENCOMPASS_TYPE, encompass_notice
from broker.webauth import Session

__all__ = ["register_notice_pages"]


def register_notice_pages(
    app: FastAPI,
    desk: Desk,
    *,
    signed_in: Callable[[Request], Session | None],
    checked_form: Callable[[Request, Session], Awaitable[Any | None]],
    acknowledged: Acknowledged,
    no_ack: Callable[[], HTMLResponse],
    named: Callable[[str, str, str], StoredRecord | None],
) -> None:
    deps = desk.deps
    store = deps.store

    @app.get("/notice/{event_id}", response_class=HTMLResponse)
    async def notice_page(request: Request, event_id: str) -> Response:
        session = signed_in(request)
        if session is None or session.user is None:
            return desk.redirect("/login")
        record = named(event_id, "school", ENCOMPASS_TYPE)
        if record is None:
            return desk.refused("No such notice.", status=404, title="Notice not found")
        if not await acknowledged([record], session.user):
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
            return desk.stale_form(request)
        record = named(event_id, "school", ENCOMPASS_TYPE)
        if record is None:
            return desk.refused("No such notice.", status=404, title="Notice not found")
        if not record.hidden and store.encompass_ack(event_id) is None:
            if not await acknowledged([record], session.user):
                return no_ack()
            store.acknowledge_encompass(event_id, session.user, deps.clock())
            session.flash_success("Notice acknowledged as read; the broker has recorded it.")
        return desk.redirect(f"/notice/{event_id}", session)
