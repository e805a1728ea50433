"""``accord audit review-override``: an IG officer's finding on a safeguarding override,
recorded in the live audit log (never a copy's) and indexed at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from broker.cli._audit_options import EventId, FindingOption, Recipient, Reference, ReviewDb
from broker.cli._audit_store import appender_of as _appender
from broker.cli._audit_store import index_once as _index_once
from broker.cli._audit_store import is_copy
from broker.cli._audit_store import open_index as _store
from broker.cli._common import keystore
from broker.cli._loop import run
from broker.cli._officer import Code, Host, Officer, PasswordStdin, sign_in, who
from broker.config import load_settings
from broker.errors import UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.governance import AuditStore, ChainAppender

__all__ = ["review"]


def review(
    event_id: EventId,
    *,
    recipient: Recipient,
    officer: Officer = None,
    finding: FindingOption,
    reference: Reference = None,
    password_stdin: PasswordStdin = False,
    code: Code = None,
    host: Host = None,
    db: ReviewDb = None,
) -> None:
    """Record your finding on a safeguarding override, in your name: written to the audit log,
    then indexed. Left out, --as is asked for at a terminal."""
    from broker.governance import check_review, index_url_problem, url_scheme

    settings = load_settings()
    if is_copy(settings, db):
        # Refused before the copy is opened (and before --as is asked for): a review is found
        # in, chained from and indexed into the live index; on a copy it would fork the live
        # chain and change the evidence.
        if (problem := index_url_problem(db or "", home=settings.home)) is not None:
            # Nothing was compared: a bare path, a libpq key=value string (never echoed: it
            # may hold a password), sqlite: with no file or a URL libpq cannot read names no
            # index this command opens.
            raise UsageError(f"--db: {problem}")
        how = (
            "another file"
            if url_scheme(db or "") == "sqlite"
            else "compared as libpq reads it: hosts, ports, database, user, options"
        )
        raise UsageError(
            f"a review is recorded against the live audit index, and --db names another "
            f"({how}): drop --db, or set ACCORD_AUDIT_DB to the live index"
        )
    officer = who(officer, password_stdin=password_stdin)
    check_review(reviewed_by=officer, finding=finding, reference=reference)
    keys = keystore(settings, Principal.CONSOLE)
    store = _store(settings, db)
    try:
        name = sign_in(settings, officer, keys=keys, password_stdin=password_stdin, code=code)
        appender = _appender(settings, keys, store, host)
        rec = run(
            _review(
                store, appender, event_id, recipient, by=name, finding=finding, reference=reference
            )
        )
        _index_once(settings, store)
    finally:
        store.close()
    typer.echo(f"override for event {event_id} to {recipient} reviewed ({rec.chain}#{rec.seq})")


async def _review(
    store: AuditStore,
    appender: ChainAppender,
    event_id: str,
    recipient: str,
    *,
    by: str,
    finding: str,
    reference: str | None,
) -> AuditRecord:
    from broker.governance import review_override

    try:
        return await review_override(
            store,
            appender,
            event_id=event_id,
            recipient=recipient,
            reviewed_by=by,
            finding=finding,
            reference=reference,
        )
    finally:
        await appender.close()
