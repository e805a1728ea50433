"""``accord audit quarantine``: the records the worker quarantined, and one of them opened.

The list reads ``accord.quarantine`` to its end as the ``indexer`` (provisioning lets it read
that topic and ``accord.audit``, nothing else) and joins each copy with its ``quarantined``
record in the audit index; it needs no key and shows no content. ``--open`` opens one copy
with the governance keystore and prints the record as it was sent, to stdout only, once the
signed-in officer's opening is on the audit log (``quarantine_opened``): a disclosure of
content is audited like every other, and nothing is printed if the record cannot be written.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker._words import plural
from broker.cli._audit_options import Db, RepFmt, ReportFormat, Since
from broker.cli._audit_quarantine_subjects import copy_subject_keys
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
from broker.cli._audit_store import appender_of, index_once, is_copy, open_index
from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.cli._officer import Code, Host, Officer, PasswordStdin, sign_in, terminal, who_and_why
from broker.config import Settings, load_settings
from broker.errors import AuditError, EnvelopeError, TransportError, UsageError
from broker.principals import Principal
from broker.topics import QUARANTINE, SCHEMA_QUARANTINE, party_of_ingress

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.governance import AuditStore
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
SignedBy = Annotated[
    str | None,
    typer.Option(
        "--signed-by",
        metavar="KEY_ID",
        help="Only records signed with this key (32 hex digits): verified, or, for a record "
        "that did not open, as its DEK bundle claims (the SIGNER KEY column says '(claimed)').",
    ),
]
Open = Annotated[
    str | None,
    typer.Option(
        "--open",
        metavar="COPY",
        help="Open this copy (the COPY column: its offset on accord.quarantine) with the "
        "governance keystore and print the record as it was sent. It may hold personal data: "
        "you sign in (--as) and the opening is written to the audit log first.",
    ),
]


class OpenPurpose(enum.StrEnum):
    """Why an officer opens a quarantined copy: recorded with the opening."""

    REDRIVE = "redrive"  # to tell the sender what to correct and send again
    SECURITY_INCIDENT = "security_incident"  # a record its sender may not have sent
    FAULT_REPORT = "fault_report"  # a stage failed: the copy goes with the bug report
    AUDIT_SAMPLE = "audit_sample"
    SUBJECT_ACCESS = "subject_access"  # a copy naming the child may belong in the answer


Purpose = Annotated[
    OpenPurpose | None,
    typer.Option(
        "--purpose",
        help="With --open: why you open it (recorded in the audit log with your name). "
        "Asked for at a terminal if left out.",
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
    signed_by: SignedBy = None,
    fmt: RepFmt = ReportFormat.TABLE,
    open_copy: Open = None,
    keys_dir: KeysDir = None,
    purpose: Purpose = None,
    officer: Officer = None,
    password_stdin: PasswordStdin = False,
    code: Code = None,
    host: Host = None,
    db: Db = None,
) -> None:
    """List quarantined records (when, reason, stage, where read from, sender, event id,
    signer key, audit record), or open one with the governance key. The list shows no
    record's content.

    --open signs you in (--as, --purpose, as 'accord audit subject' does) and writes the
    opening to the audit log (quarantine_opened: who, why, which copy; never its content)
    before printing anything."""
    from broker.cli._audit import parse_when

    settings = load_settings()
    if open_copy is not None:
        if (since, reason, sender, signed_by, db) != (None,) * 5:
            raise UsageError(
                "--open opens one copy: drop --since, --reason, --sender, --signed-by and --db"
            )
        where = parse_copy_id(open_copy)
        if where is None:
            raise UsageError("--open: a copy's offset, as the COPY column shows it")
        who = _Who(officer, purpose, password_stdin=password_stdin, code=code, host=host)
        _open(settings, where, keys_dir, fmt, who)
        return
    if keys_dir is not None:
        raise UsageError("--dir opens a copy: give --open too")
    if (officer, purpose, code, host) != (None, None, None, None) or password_stdin:
        raise UsageError("--as, --purpose, --password-stdin, --code and --host sign you in to "
                         "open a copy: give --open too (the list needs no sign-in)")  # fmt: skip
    when = parse_when(since, "--since")
    if signed_by is not None:
        from broker.governance import is_key_id

        signed_by = signed_by.strip().lower()
        if not is_key_id(signed_by):
            raise UsageError("--signed-by: a key id, 32 hex digits (as 'accord keys list' shows)")
    copies = run(_copies(settings, when))
    # Audit records a little before --since too: a record is audited just before its copy is
    # stamped, and a pair astride the line would be shown apart (chosen() cuts by time after).
    audited = _audited(settings, db, when - _STRADDLE if when is not None else None)
    lines = join(copies, audited if audited is not None else [])
    shown = chosen(lines, since=when, reason=reason, sender=sender, signed_by=signed_by)
    typer.echo(lines_json(shown) if fmt is ReportFormat.JSON else lines_table(shown))
    if audited is None:
        typer.echo(
            "accord: warning: no audit index here: reasons, stages and event ids are not "
            "known (give --db, or run where 'accord audit index' keeps one)",
            err=True,
        )
    elif (waiting := unindexed(c for c in lines if c.copy is not None)) and (
        reason or sender or signed_by
    ):
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


@dataclass(frozen=True, slots=True)
class _Who:
    """Who opens a copy and why, as given on the command line (sign-in still to come)."""

    officer: str | None
    purpose: OpenPurpose | None
    password_stdin: bool
    code: str | None
    host: str | None

    def named(self) -> tuple[str, OpenPurpose]:
        """The account and the purpose, the missing ones asked for at a terminal; without
        one, a line naming what is missing (``who_and_why``'s own would say --reason,
        which here filters the list)."""
        missing = [o for o, v in (("--purpose", self.purpose), ("--as", self.officer)) if v is None]
        if missing and (self.password_stdin or not terminal()):
            how = " ".join(f"{o} {'P' if o == '--purpose' else 'NAME'}" for o in missing)
            choices = ", ".join(p.value for p in OpenPurpose)
            raise UsageError(
                f"--open is recorded in the audit log with who opened it and why: give {how}"
                + (f" (P one of {choices})" if self.purpose is None else "")
            )
        return who_and_why(
            self.officer, self.purpose, OpenPurpose, password_stdin=self.password_stdin
        )


def _open(
    settings: Settings,
    where: tuple[int, int],
    keys_dir: Path | None,
    fmt: ReportFormat,
    who: _Who,
) -> None:
    """Open one copy, record the opening, then print it: never the content without the
    record. Everything that can fail before (sign-in, reading, opening, the index) fails
    with nothing recorded and nothing shown."""
    officer, purpose = who.named()
    keys = _governance_keys(settings, keys_dir)
    console = keystore(settings, Principal.CONSOLE)  # signs the command line's chain
    store = open_index(settings, None)  # the live index: the record goes on from its head
    try:
        name = sign_in(
            settings, officer, keys=console, password_stdin=who.password_stdin, code=who.code
        )
        rec, payload = _unsealed(settings, where, keys)
        # Caught up first, so the record names the event id the worker authenticated even
        # when no 'accord audit index' ran since the copy was quarantined.
        index_once(settings, store)
        audited = _quarantine_of(store, payload, _at(rec.timestamp_ms))
        # The children the content names: the opening discloses them, so each one's subject
        # access request must list it (the worker's quarantined record names no one).
        named = copy_subject_keys(payload, console.linkage_key())
        opening = _record_opening(
            settings, console, store, who.host,
            _opening(name, purpose, where, payload, audited, named=named),
        )  # fmt: skip
    finally:
        store.close()
    typer.echo(PERSONAL, err=True)
    typer.echo(
        f"accord: this opening is recorded in the audit log as quarantine_opened "
        f"({opening.chain}#{opening.seq})",
        err=True,
    )
    typer.echo(_named_note(len(opening.subject_keys)), err=True)
    shown = copy_id(*where)
    if fmt is ReportFormat.JSON:
        typer.echo(json.dumps({"copy": shown, **payload}, indent=2))
    else:
        typer.echo(opened_text(shown, payload))


def _unsealed(
    settings: Settings, where: tuple[int, int], keys: FileKeyStore
) -> tuple[Retained, dict[str, Any]]:
    """The copy at ``where`` and its content, opened with the governance keys (not shown)."""
    from broker.envelope import Opener

    found = [r for r in run(_read(settings, start=where)) if (r.partition, r.offset) == where]
    name = copy_id(*where)
    if not found:
        raise UsageError(f"--open: accord.quarantine holds no copy {name} (see the COPY column)")
    [rec] = found[:1]
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
    return rec, payload


def _source(payload: dict[str, Any]) -> tuple[str, int, int] | None:
    """Where the quarantined record was read from, as the worker sealed it in the copy."""
    topic, part, offset = payload.get("topic"), payload.get("partition"), payload.get("offset")
    if isinstance(topic, str) and type(part) is int and type(offset) is int:
        return topic, part, offset
    return None


def _quarantine_of(
    store: AuditStore, payload: dict[str, Any], stamped: datetime
) -> AuditRecord | None:
    """The ``quarantined`` record of this copy: of the same source record, the last audited
    by the time the copy was stamped (a record quarantined twice has two); None when the
    index does not hold it."""
    from broker.governance import Window

    source = _source(payload)
    if source is None:
        return None
    topic, part, offset = source
    same = [
        r
        for r in store.quarantined(Window())
        if (r.data.get("topic"), r.data.get("partition"), r.data.get("offset"))
        == (topic, part, offset)
    ]
    before = [r for r in same if r.at <= stamped + _STRADDLE]
    chosen_from = before or same
    return chosen_from[-1] if chosen_from else None


@dataclass(frozen=True, slots=True)
class _Opening:
    """A ``quarantine_opened`` record's members, before it is chained."""

    event_id: str | None
    party: str | None
    subject_keys: tuple[str, ...]
    data: dict[str, Any]


def _opening(
    officer: str,
    purpose: OpenPurpose,
    where: tuple[int, int],
    payload: dict[str, Any],
    audited: AuditRecord | None,
    *,
    named: tuple[str, ...] = (),
) -> _Opening:
    """The ``quarantine_opened`` record's members: who, why, which copy and what the worker
    sealed about it (reason, stage, source, digest), the event id it authenticated, and its
    ``quarantined`` record; filed under ``named``, the subject keys of the children the
    copy names. Never the copy's key, headers or value: they may be anything."""

    def text(key: str) -> str | None:
        value = payload.get(key)
        return value if isinstance(value, str) else None

    source = _source(payload)
    data: dict[str, Any] = {
        "officer": officer,
        "purpose": purpose.value,
        "copy": copy_id(*where),
        "copy_partition": where[0],
        "copy_offset": where[1],
        "reason": text("reason"),
        "stage": text("stage"),
        "topic": source[0] if source else None,
        "partition": source[1] if source else None,
        "offset": source[2] if source else None,
        "digest": text("digest"),
        "quarantined": f"{audited.chain}#{audited.seq}" if audited is not None else None,
    }
    sender = audited.party if audited is not None else None
    return _Opening(
        event_id=audited.event_id if audited is not None else None,
        party=sender or (party_of_ingress(source[0]) if source else None),
        subject_keys=tuple(
            dict.fromkeys((*(audited.subject_keys if audited is not None else ()), *named))
        ),
        data=data,
    )


def _named_note(keys: int) -> str:
    """Whose subject access requests will list this opening (keys only, never who)."""
    if keys:
        return (
            f"accord: the opening is filed under {plural(keys, 'subject key')} of the "
            "children the copy names: their subject access requests list it"
        )
    return (
        "accord: note: the copy names no child that could be keyed (its value is no contact "
        "event, or is sealed, truncated or malformed): the opening is filed under no subject "
        "key, so no subject access request lists it"
    )


def _record_opening(
    settings: Settings,
    console: FileKeyStore,
    store: AuditStore,
    host: str | None,
    opening: _Opening,
) -> AuditRecord:
    """Write the ``quarantine_opened`` record on the command line's chain (``console:HOST.cli``,
    signed with the console's key, as ``accord audit subject`` writes its look-ups); return
    it once committed with its checkpoint. ``AuditError`` if it could not be written."""
    from broker.audit import AuditKind, ChainWriter

    appender = appender_of(settings, console, store, host)

    def build(w: ChainWriter) -> list[AuditRecord]:
        o = opening
        kind = AuditKind.QUARANTINE_OPENED
        return [w.append(kind, event_id=o.event_id, party=o.party,
                         subject_keys=o.subject_keys, data=o.data)]  # fmt: skip

    async def write() -> AuditRecord:
        try:
            records = await appender.append(build)
        finally:
            await appender.close()
        return records[0]

    try:
        return run(write())
    except (TransportError, AuditError) as exc:
        raise AuditError(f"the opening could not be recorded in the audit log, so nothing is "
                         f"shown: {exc}") from None  # fmt: skip


def _governance_keys(settings: Settings, keys_dir: Path | None) -> FileKeyStore:
    if keys_dir is None:
        return keystore(settings, Principal.GOVERNANCE)
    from broker.keys import FileKeyStore

    if not (keys_dir / "keystore.json").is_file():
        raise UsageError(f"--dir: no keystore at {keys_dir}")
    return FileKeyStore(keys_dir, settings.keystore_passphrase())
