"""``accord audit quarantine``: the records the worker quarantined, and one of them opened.

The list reads ``accord.quarantine`` to its end as the ``indexer`` (provisioning lets it read
that topic and ``accord.audit``, nothing else) and joins each copy with its ``quarantined``
record in the audit index; it needs no key and shows no content. ``--open`` opens one copy
with the governance keystore and prints the record as it was sent, to stdout only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker._words import plural
from broker.cli._audit_options import Db, RepFmt, ReportFormat, Since
from broker.cli._audit_quarantine_view import (
    Copy,
    chosen,
    copy_id,
    join,
    opened_text,
    parse_copy_id,
    source_of,
    unindexed,
)
from broker.cli._audit_quarantine_view import as_json as lines_json
from broker.cli._audit_quarantine_view import table as lines_table
from broker.cli._audit_store import is_copy, open_index
from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.config import Settings, load_settings
from broker.errors import AuditError, EnvelopeError, UsageError
from broker.principals import Principal
from broker.topics import QUARANTINE, SCHEMA_QUARANTINE

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.kafka import Retained
    from broker.keys import FileKeyStore

Reason = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Only records quarantined for this reason code (docs/operations.md, Quarantine "
        "reason codes), e.g. malformed, tampered, invalid-event.",
    ),
]
Sender = Annotated[
    str | None, typer.Option("--sender", help="Only records from this party's ingress topic.")
]
Open = Annotated[
    str | None,
    typer.Option(
        "--open",
        metavar="COPY",
        help="Open this copy (the COPY column: its offset on accord.quarantine) with the "
        "governance keystore and print the record as it was sent. It may hold personal data.",
    ),
]
KeysDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="With --open: the governance keystore (default: ACCORD_KEYSTORE__PATH's, as "
        "'accord keys sign-directory' finds it).",
    ),
]

PERSONAL = (
    "accord: warning: the opened copy is the record as it was sent and may hold personal "
    "data: keep it out of tickets, chat and logs"
)

# How far before --since audit records are read: a record is audited just before its copy.
_STRADDLE = timedelta(minutes=1)


def quarantine(
    *,
    since: Since = None,
    reason: Reason = None,
    sender: Sender = None,
    fmt: RepFmt = ReportFormat.TABLE,
    open_copy: Open = None,
    keys_dir: KeysDir = None,
    db: Db = None,
) -> None:
    """List quarantined records (when, reason, stage, where read from, sender, event id, audit
    record), or open one with the governance key. The list shows no record's content."""
    from broker.cli._audit import parse_when

    settings = load_settings()
    if open_copy is not None:
        if since is not None or reason is not None or sender is not None or db is not None:
            raise UsageError("--open opens one copy: drop --since, --reason, --sender and --db")
        where = parse_copy_id(open_copy)
        if where is None:
            raise UsageError("--open: a copy's offset, as the COPY column shows it")
        _open(settings, where, keys_dir, fmt)
        return
    if keys_dir is not None:
        raise UsageError("--dir opens a copy: give --open too")
    when = parse_when(since, "--since")
    copies = run(_copies(settings, when))
    # Audit records a little before --since too: a record is audited just before its copy is
    # stamped, and a pair astride the line would be shown apart (chosen() cuts by time after).
    audited = _audited(settings, db, when - _STRADDLE if when is not None else None)
    lines = join(copies, audited if audited is not None else [])
    shown = chosen(lines, since=when, reason=reason, sender=sender)
    typer.echo(lines_json(shown) if fmt is ReportFormat.JSON else lines_table(shown))
    if audited is None:
        typer.echo(
            "accord: warning: no audit index here: reasons, stages and event ids are not "
            "known (give --db, or run where 'accord audit index' keeps one)",
            err=True,
        )
    elif (waiting := unindexed(c for c in lines if c.copy is not None)) and (reason or sender):
        typer.echo(
            f"accord: note: {plural(waiting, 'copy', 'copies')} not yet in the audit index "
            "(reason unknown) are not filtered in: run 'accord audit index'",
            err=True,
        )


async def _copies(settings: Settings, since: datetime | None) -> list[Copy]:
    from broker.envelope import read_header

    out: list[Copy] = []
    for r in await _read(settings, since=since):
        try:
            source = source_of(read_header(r.value or b"").event_id)
        except EnvelopeError:
            source = None  # the worker alone may write here: not its record
        out.append(Copy(r.partition, r.offset, _at(r.timestamp_ms), source))
    return out


async def _read(
    settings: Settings, *, since: datetime | None = None, start: tuple[int, int] | None = None
) -> list[Retained]:
    """accord.quarantine to its end as it is now (``read_retained`` bounds the read and the
    close), logged in as the indexer."""
    from broker.kafka import read_retained

    since_ms = int(since.timestamp() * 1000) if since is not None else None
    at = {(QUARANTINE, start[0]): start[1]} if start is not None else None
    return await read_retained(
        kafka_as(settings, Principal.INDEXER), [QUARANTINE], since_ms=since_ms, start=at
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _audited(
    settings: Settings, db: str | None, since: datetime | None
) -> list[AuditRecord] | None:
    """The ``quarantined`` audit records from ``since``; None when there is no index here
    (and none named): the list is still worth having without them."""
    from broker.governance import Window

    try:
        store = open_index(settings, db, read_only=is_copy(settings, db))
    except AuditError:
        if db is not None:
            raise
        return None
    try:
        return store.quarantined(Window(since=since))
    finally:
        store.close()


def _open(
    settings: Settings, where: tuple[int, int], keys_dir: Path | None, fmt: ReportFormat
) -> None:
    from broker.envelope import Opener

    found = [r for r in run(_read(settings, start=where)) if (r.partition, r.offset) == where]
    name = copy_id(*where)
    if not found:
        raise UsageError(f"--open: accord.quarantine holds no copy {name} (see the COPY column)")
    [rec] = found[:1]
    keys = _governance_keys(settings, keys_dir)
    # A copy is kept 90 days: a governance key rotated out since still opens what was
    # sealed to it while it was live.
    opener = Opener(Principal.GOVERNANCE, keys, expired_own_keys=True)
    headers = [(k, v) for k, v in rec.headers if v is not None]
    try:
        opened = opener.open_kafka(rec.value or b"", headers, topic=QUARANTINE)
    except EnvelopeError as exc:
        raise EnvelopeError(
            f"copy {name} does not open with the governance keystore at {keys.path}: {exc}"
        ) from None
    if opened.sender != Principal.WORKER or opened.schema != SCHEMA_QUARANTINE:
        raise UsageError(f"copy {name} is not a quarantine record the worker sealed")
    payload: dict[str, Any] = json.loads(opened.payload)
    typer.echo(PERSONAL, err=True)
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps({"copy": name, **payload}, indent=2))
    else:
        typer.echo(opened_text(name, payload))


def _governance_keys(settings: Settings, keys_dir: Path | None) -> FileKeyStore:
    if keys_dir is None:
        return keystore(settings, Principal.GOVERNANCE)
    from broker.keys import FileKeyStore

    if not (keys_dir / "keystore.json").is_file():
        raise UsageError(f"--dir: no keystore at {keys_dir}")
    return FileKeyStore(keys_dir, settings.keystore_passphrase())
