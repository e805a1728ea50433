"""What every page module of the desk needs before it draws anything, written once and given
to each by :func:`broker.desk._pages.register_pages`: the person signed in, a form checked
against the session's CSRF token, a record named by a page's address (every miss the same
404), and the access acknowledgement a page sends before it shows a record's content (and the
page shown instead when it cannot be sent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from broker.desk._app import NOT_CONFIRMED, Desk
from broker.desk._purpose import by_purpose
from broker.desk._stored import StoredRecord
from broker.desk._work import ENCOMPASS_TYPE
from broker.errors import AccordError
from broker.webauth import Session, form_field, read_form

__all__ = ["ID", "PageKit"]

log = structlog.get_logger("accord.desk")

#: What a flag, record, event or child id in an address or a form may look like: anything
#: else is answered as not found without a look in the store.
ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class PageKit:
    """One desk's page helpers (``desk``: the pages' desk)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def signed_in(self, request: Request) -> Session | None:
        """The session of the person signed in; None if nobody is."""
        session = self.desk.session(request)
        return session if session is not None and session.user else None

    async def checked_form(self, request: Request, session: Session) -> Any | None:
        """The form posted; None if its CSRF token is not the session's."""
        form = await read_form(request)
        return form if session.csrf_ok(form_field(form, "csrf")) else None

    async def signed_form(self, request: Request) -> tuple[Session, str, Any] | Response:
        """A form posted by the person signed in, its CSRF token the session's: the session,
        the person and the form; or the answer instead (sign in, the stale-form page)."""
        session = self.signed_in(request)
        if session is None or session.user is None:
            return self.desk.redirect("/login")
        form = await self.checked_form(request, session)
        if form is None:
            return self.desk.stale_form(request)
        return session, session.user, form

    def named(
        self, event_id: str, what: str, *, kind: str | None = None, event_type: str | None = None
    ) -> StoredRecord | HTMLResponse:
        """The record a page's address names, if this desk is a ``kind``'s and the record an
        ``event_type`` (either None: any); else the 404 for a ``what`` ("notice"), the same
        for every miss, so that none tells what the desk holds."""
        deps = self.desk.deps
        record = deps.store.record(event_id) if ID.fullmatch(event_id) else None
        if (
            record is None
            or (kind is not None and deps.kind != kind)
            or (event_type is not None and record.event_type != event_type)
        ):
            return self.desk.refused(
                f"No such {what}.", status=404, title=f"{what.capitalize()} not found"
            )
        return record

    def named_page(
        self, request: Request, event_id: str, what: str, *, kind: str | None = None,
        event_type: str | None = None,
    ) -> tuple[Session, str, StoredRecord] | Response:  # fmt: skip
        """A page of the record its address names (:meth:`named`), asked for by the person
        signed in: the session, the person and the record; or the answer instead (sign in,
        404)."""
        session = self.signed_in(request)
        if session is None or session.user is None:
            return self.desk.redirect("/login")
        record = self.named(event_id, what, kind=kind, event_type=event_type)
        if isinstance(record, Response):
            return record
        return session, session.user, record

    async def acknowledged(self, records: Sequence[StoredRecord], user: str) -> bool:
        """Sends the acknowledgements of the records a page shows: False if they could not
        all be sent, and then the page shows nothing (:meth:`no_ack`)."""
        # Each record for what it was shared for (._purpose): one bounded send per purpose,
        # all recorded or none (then nothing is shown), or SendUnconfirmed (shown nothing; may
        # yet be recorded: broker.sdk._bounded). A later send failing leaves the earlier ones
        # recorded and nothing shown: the log may say more was viewed than was, never less.
        shown = [r for r in records if not r.hidden]
        for purpose, group in by_purpose(shown).items():
            try:
                await self.desk.deps.acks.acknowledge_all(
                    [r.event_id for r in group], by=user, purpose=purpose
                )
            except AccordError as exc:
                log.error("desk_ack_failed", error=type(exc).__name__)  # noqa: TRY400  # no traceback: it may hold the page
                return False
            self._opened(group, user)
        return True

    def _opened(self, records: Sequence[StoredRecord], user: str) -> None:
        """A school's Encompass notices among ``records``, their acknowledgements just
        confirmed sent, kept as opened: the central side counts a notice read at the school's
        first access acknowledgement, whichever page sent it (the notice, the record page, a
        search by NHS number), so the desk's LATE follows the same (``_store_notices``). Only
        after the send: one refused or unconfirmed is never kept, so the desk never says a
        notice was read when the broker may not know it."""
        deps = self.desk.deps
        notices = [r.event_id for r in records if r.event_type == ENCOMPASS_TYPE]
        if deps.kind == "school" and notices:
            try:
                deps.store.encompass_opened(notices, user, deps.clock())
            except Exception as exc:  # noqa: BLE001  # the access is recorded: show the page
                # Not kept here, so the desk shows the notice unopened (towards LATE, never
                # towards read); the broker has the acknowledgement all the same.
                log.warning("desk_opening_not_kept", error=type(exc).__name__,
                            notices=len(notices))  # fmt: skip

    def no_ack(self) -> HTMLResponse:
        """The page shown instead of records whose acknowledgement was not sent."""
        return self.desk.refused(
            # True whether Kafka refused it or may yet commit it (SendUnconfirmed).
            "The broker did not confirm that it recorded your access, so the record is not "
            "shown. Try again in a moment.",
            status=503, title=NOT_CONFIRMED, page_error=True,
        )  # fmt: skip
