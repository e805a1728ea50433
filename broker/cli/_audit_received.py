"""``accord audit received --signed-by KEY``: the events the worker accepted under one
signing key, and to whom each went, for a security incident (a stolen keystore: "which
events did this key sign?").

The look-up is written to the audit log (``console_query``, page ``cli.received``: who, why,
the key, the window) before anything is printed, as ``accord audit report`` writes its own.
A line shows ids, a time and an event type, never a child: the record names no subject.
Records the key's holder sent that did not open are ``accord audit quarantine``'s (their
claimed key id).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from broker._words import plural
from broker.cli._audit_options import (
    Db,
    RepFmt,
    ReportFormat,
    ReportReason,
    RepReason,
    Since,
    Until,
)
from broker.cli._audit_store import index_once, is_copy, open_index
from broker.cli._common import keystore
from broker.cli._officer import Code, Host, Officer, PasswordStdin, sign_in, who_and_why
from broker.config import load_settings
from broker.errors import UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.governance import SignedEvent
    from broker.keys import FileKeyStore

SignedBy = Annotated[
    str,
    typer.Option(
        "--signed-by",
        metavar="KEY_ID",
        help="The signing key's id (32 hex digits, as 'accord keys list' shows it): the "
        "events whose envelopes verified under it.",
    ),
]


def received(
    *,
    signed_by: SignedBy,
    reason: RepReason = None,
    officer: Officer = None,
    password_stdin: PasswordStdin = False,
    code: Code = None,
    host: Host = None,
    since: Since = None,
    until: Until = None,
    db: Db = None,
    fmt: RepFmt = ReportFormat.TABLE,
) -> None:
    """Events the worker accepted whose envelopes verified under a signing key (e.g. one
    stolen): event id, sender, when received, event type, and the parties it was delivered
    to. Names no child.

    Use --reason security_incident for a key compromise. The look-up is written to the audit
    log (who, why, the key and the window) before anything is printed. Left out, --as and
    --reason are asked for at a terminal. Records signed (or claimed to be) with the key that
    did not open: 'accord audit quarantine --signed-by KEY_ID'.
    """
    from broker.cli._audit import _record_lookup, parse_when, warn_broken
    from broker.governance import Window, events_signed_by, is_key_id

    key_id = signed_by.strip().lower()
    if not is_key_id(key_id):
        raise UsageError("--signed-by: a key id, 32 hex digits (as 'accord keys list' shows)")
    window = Window(parse_when(since, "--since"), parse_when(until, "--until", end=True))
    if window.since and window.until and window.since >= window.until:
        raise UsageError("--since must be before --until")
    settings = load_settings()
    keys = keystore(settings, Principal.CONSOLE)
    officer, why = who_and_why(officer, reason, ReportReason, password_stdin=password_stdin)
    copy = is_copy(settings, db)  # read as it is: never caught up, migrated or tightened
    store = open_index(settings, db, read_only=copy)
    try:
        name = sign_in(settings, officer, keys=keys, password_stdin=password_stdin, code=code)
        if not copy:
            index_once(settings, store)  # what is new on the topic is in the list
        events = events_signed_by(store, key_id, window)
        detail = {"purpose": why.value, "signed_by": key_id, "events": str(len(events))}
        detail |= {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        _record_lookup(
            settings, keys, store, host, officer=name, page="cli.received",
            subject_keys=(), detail=detail, catch_up=not copy,  # ids only: no child shown
        )  # fmt: skip
        broken = store.broken_chains()
    finally:
        store.close()
    whose = _whose(keys, key_id)
    if fmt is ReportFormat.JSON:
        typer.echo(as_json(key_id, whose, events))
    else:
        typer.echo(as_table(key_id, whose, events))
    warn_broken(broken)


def _whose(keys: FileKeyStore, key_id: str) -> dict[str, str | None] | None:
    """The key as the console's directory lists it (party, purpose, status), if it does."""
    info = keys.public_key(key_id)
    if info is None:
        return None
    changed = info.status_changed_at
    return {
        "party": info.party,
        "purpose": info.purpose.value,
        "status": info.status.value,
        "status_changed_at": changed.isoformat() if changed is not None else None,
    }


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def as_json(key_id: str, whose: dict[str, str | None] | None, events: list[SignedEvent]) -> str:
    return json.dumps(
        {
            "signed_by": key_id,
            "key": whose,
            "events": [
                {
                    "event_id": e.event_id,
                    "sender": e.sender,
                    "received_at": _when(e.received_at),
                    "event_type": e.event_type,
                    "delivered_to": list(e.delivered_to),
                    "audit": e.audit,
                }
                for e in events
            ],
        },
        indent=2,
    )


_COLUMNS = ("RECEIVED", "EVENT ID", "SENDER", "TYPE", "DELIVERED TO", "AUDIT")


def as_table(key_id: str, whose: dict[str, str | None] | None, events: list[SignedEvent]) -> str:
    if whose is None:
        head = f"key {key_id}: not in this keystore's directory"
    else:
        status = str(whose["status"])
        if whose["status_changed_at"]:
            status += f" {whose['status_changed_at']}"
        head = f"key {key_id}: {whose['party']} {whose['purpose']} key, {status}"
    head += f"; {plural(len(events), 'event')} accepted under it"
    if not events:
        return head
    rows = [_COLUMNS] + [
        (_when(e.received_at), e.event_id, e.sender, e.event_type or "-",
         ", ".join(e.delivered_to) or "(no one)", e.audit)
        for e in events
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([head, *lines])
