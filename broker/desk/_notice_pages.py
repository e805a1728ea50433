"""A school's Operation Encompass notice: ``/notice/<id>`` and its acknowledgement.

Opening the notice sends its access acknowledgement first (no acknowledgement, no notice),
and the first opening so acknowledged is the notice read, as the central side counts it
(``_store_notices``; kept by ``PageKit.acknowledged``); acknowledging it as read is recorded
once, by whoever did, and says so.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._notices import notice_of
from broker.desk._page_kit import PageKit
from broker.desk._work import ENCOMPASS_TYPE

__all__ = ["register_notice_pages"]


def register_notice_pages(app: FastAPI, kit: PageKit) -> None:
    desk = kit.desk
    deps = desk.deps
    store = deps.store

    @app.get("/notice/{event_id}", response_class=HTMLResponse)
    async def notice_page(request: Request, event_id: str) -> Response:
        got = kit.named_page(request, event_id, "notice", kind="school", event_type=ENCOMPASS_TYPE)
        if isinstance(got, Response):
            return got
        session, user, record = got
        if not await kit.acknowledged([record], user):
            return kit.no_ack()
        notice = notice_of(store, record, calendar=deps.schools, now=deps.clock())
        return desk.render(
            "notice.html", session, title="Encompass notice", notice=notice,
            names=deps.party_names,
        )  # fmt: skip

    @app.post("/notice/{event_id}/acknowledge")
    async def acknowledge_notice(request: Request, event_id: str) -> Response:
        if isinstance(got := await kit.signed_form(request), Response):
            return got
        session, user, _ = got
        record = kit.named(event_id, "notice", kind="school", event_type=ENCOMPASS_TYPE)
        if isinstance(record, Response):
            return record
        if not record.hidden and store.encompass_ack(event_id) is None:
            if not await kit.acknowledged([record], user):
                return kit.no_ack()
            store.acknowledge_encompass(event_id, user, deps.clock())
            session.flash_success("Notice acknowledged as read; the broker has recorded it.")
        return desk.redirect(f"/notice/{event_id}", session)
