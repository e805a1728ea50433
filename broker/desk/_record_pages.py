"""Every record a desk holds, listed and found: ``/records``, ``/records/search``, ``/record/<id>``.

The list names nobody: when, what, from whom, the reference and the purpose, so a desk can
reach every record it received (a co-ordinating team's unflagged ones, a hub's records other
than referrals) without a list of names, itself a disclosure. The people are shown only on
opening a record, which is acknowledged, by name, like every view.

A search by reference shows the same columns. A search by a child's NHS number ties the
records found to that child, so it is a view of them: each is acknowledged as viewed before
the list shows (no acknowledgement, no list), and it finds only records whose delivered view
names that NHS number (their child key is its keyed hash), so it tells nothing the
agreements did not. Both queries travel in a POST body, never the address, and no log holds
them.

A search cannot find a record that does not carry what it searches by: many agreements give a
hub no NHS number and no reference. So every search's answer, found or not, says how many of
the desk's records carry none and cannot be found that way (by NHS number: name no child by
one, as the search finds a record through its child), a count from the store, which opens no
record, lest "No record found" read as "no agency has told us anything".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._flag import child_key
from broker.desk._page_kit import PageKit
from broker.desk._purpose import purpose_of
from broker.desk._show import local_time
from broker.desk._stored import StoredRecord
from broker.desk._work import ENCOMPASS_TYPE, REFERRAL_TYPE
from broker.events import normalise_nhs_number
from broker.webauth import Flash, Session, form_field

__all__ = ["PAGE_SIZE", "REFERENCE_LIMIT", "register_record_pages"]

log = structlog.get_logger("accord.desk")

PAGE_SIZE = 50
#: The most records a search by reference lists; a search finding more says so.
REFERENCE_LIMIT = 200
# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_PAGE = re.compile(r"[0-9]{1,6}")
_MAX_REFERENCE = 200
_NOT_AN_NHS_NUMBER = "That NHS number is not valid: check you copied all 10 digits."


def register_record_pages(app: FastAPI, kit: PageKit) -> None:
    desk = kit.desk
    deps = desk.deps
    store = deps.store

    def link(record: StoredRecord) -> str:
        """The page that shows a record: a hub's referral and a school's notice have their
        own (with its outcome form, its deadline); any other, the record page."""
        if deps.kind == "hub" and record.event_type == REFERRAL_TYPE:
            return f"/referral/{record.event_id}"
        if deps.kind == "school" and record.event_type == ENCOMPASS_TYPE:
            return f"/notice/{record.event_id}"
        return f"/record/{record.event_id}"

    def listing(
        session: Session, rows: Sequence[StoredRecord], *, status: int = 200,
        errors: Sequence[Flash] = (), **extra: Any,
    ) -> HTMLResponse:  # fmt: skip
        values: dict[str, Any] = {
            "heading": "Records received", "total": len(rows), "page": 1, "pages": 1,
            "searched": False, "acknowledged": False, "children": [], "cut_short": False,
            "limit": REFERENCE_LIMIT, "by": None, "unsearchable": 0, "typed_reference": "",
            # A school no agreement sends an NHS number is offered no search by one (._received).
            "nhs_search": deps.kind != "school" or deps.nhs_numbers_received,
        }  # fmt: skip
        values.update(extra)
        return desk.render(
            "records.html", session, status=status, errors=errors, title="Records",
            rows=[(r, link(r)) for r in rows], names=deps.party_names, **values,
        )  # fmt: skip

    @app.get("/records", response_class=HTMLResponse)
    async def records_page(request: Request, page: str = "1") -> Response:
        session = kit.signed_in(request)
        if session is None:
            return desk.redirect("/login")
        number = int(page) if _PAGE.fullmatch(page) else 1
        rows, total = store.records_page(limit=PAGE_SIZE, offset=(max(number, 1) - 1) * PAGE_SIZE)
        return listing(
            session, rows, total=total, page=max(number, 1), pages=max(1, -(-total // PAGE_SIZE))
        )

    @app.post("/records/search", response_class=HTMLResponse)
    async def search(request: Request) -> Response:
        if isinstance(got := await kit.signed_form(request), Response):
            return got
        session, user, form = got
        reference = (form_field(form, "reference") or "").strip()[:_MAX_REFERENCE]
        typed = (form_field(form, "nhs_number") or "").strip()

        def refused(text: str, field: str) -> HTMLResponse:
            # The list drawn again in place (it names nobody), the reference put back; an NHS
            # number never is (docs/desk.md, Search).
            rows, total = store.records_page(limit=PAGE_SIZE, offset=0)
            return listing(
                session, rows, total=total, pages=max(1, -(-total // PAGE_SIZE)), status=400,
                errors=[Flash.error(text, field=field)], typed_reference=reference,
            )  # fmt: skip

        if not typed:
            if not reference:
                return refused("Give a reference or an NHS number to search for.", "reference")
            found = store.records_with_reference(reference, limit=REFERENCE_LIMIT)
            cut_short = len(found) > REFERENCE_LIMIT  # the list stops short of them all
            log.info("desk_records_search", by=user, by_nhs_number=False,
                     found=len(found[:REFERENCE_LIMIT]), cut_short=cut_short)  # fmt: skip
            return listing(session, found[:REFERENCE_LIMIT], heading="Records with that reference",
                           searched=True, cut_short=cut_short, by="reference",
                           unsearchable=store.count_unsearchable("reference"))  # fmt: skip
        try:
            digits = normalise_nhs_number(typed)
        except ValueError:
            # Plain words for the desk's people: why it failed (the check digit's modulus 11)
            # is for the SDK and the command line to say; the number is never repeated.
            return refused(_NOT_AN_NHS_NUMBER, "nhs_number")
        child = store.current_child(child_key(deps.linkage_key, {"nhs_number": digits}) or "")
        # A withdrawn record is not to be used: a search does not tie it to the child.
        found = [r for r in store.records_about(child) if not r.hidden]
        if reference:
            found = [r for r in found if (r.reference or "").upper() == reference.upper()]
        found.sort(key=lambda r: (r.decided_at, r.event_id), reverse=True)
        # Each record for what it was shared for, as on opening it (broker.desk._purpose).
        if not await kit.acknowledged(found, user):
            return kit.no_ack()
        log.info("desk_records_search", by=user, by_nhs_number=True, found=len(found))
        timeline = deps.kind == "coordinating_team" and bool(found)
        return listing(
            session, found, heading="Records about that NHS number", searched=True,
            acknowledged=bool(found), children=[child] if timeline else [], by="nhs_number",
            unsearchable=store.count_unsearchable("nhs_number"),
        )  # fmt: skip

    @app.get("/record/{event_id}", response_class=HTMLResponse)
    async def record_page(request: Request, event_id: str) -> Response:
        if isinstance(got := kit.named_page(request, event_id, "record"), Response):
            return got
        session, user, record = got
        purpose = purpose_of(record)
        if not await kit.acknowledged([record], user):
            return kit.no_ack()
        children = []
        if deps.kind == "coordinating_team" and not record.hidden:
            keys = store.children_of(event_id)
            children = list(dict.fromkeys(store.current_child(c) for c in keys))
        # Who sent it and when it was shared: no person, so the title (kept in the browser's
        # history and bookmarks) may carry it too.
        shared = local_time(record.decided_at, ZoneInfo(deps.schools.timezone))[:10]
        heading = (
            f"Record from {deps.party_names.get(record.sender, record.sender)}, shared {shared}"
        )
        return desk.render(
            "record.html", session, title=heading, heading=heading, record=record,
            names=deps.party_names, purpose=purpose, children=children,
        )  # fmt: skip
