"""What ``accord audit quarantine`` shows: each quarantine copy on ``accord.quarantine``
joined with its ``quarantined`` audit record, and one copy opened.

A listing line holds only what is no one's personal data: where the record was read from
(the copy's routing header, written by the worker), and the audit record's reason, stage,
sender and authenticated event id. The copy's sealed content (the record's own bytes, which
may hold anything) is shown by :func:`opened_text` alone, after the governance key opened it.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from broker.topics import party_of_ingress

if TYPE_CHECKING:
    from broker.audit import AuditRecord

#: What stands for what the index does not (yet) say: a copy the indexer has not reached.
UNKNOWN = "?"

Source = tuple[str, int, int]  # topic, partition, offset of the record that was quarantined


@dataclass(frozen=True, slots=True)
class Copy:
    """One record of ``accord.quarantine``, as its unsealed routing header names it."""

    partition: int
    offset: int
    at: datetime  # when the worker wrote it (the Kafka timestamp)
    source: Source | None  # None: an id the worker never writes


@dataclass(frozen=True, slots=True)
class Line:
    time: str
    reason: str
    stage: str
    topic: str
    partition: int | None
    offset: int | None
    sender: str | None
    event_id: str | None  # only an id the worker authenticated (the audit record's)
    copy: str | None  # where the sealed copy is, for --open; None: no copy held or kept
    audit: str | None  # chain#seq of the ``quarantined`` record
    # The key its signature verified under (a record that opened), else the key its DEK
    # bundle claims, unverified (one refused while opening): never both (since 2026-12-08).
    signer_key_id: str | None = None
    claimed_signer_key_id: str | None = None


def source_of(envelope_id: str) -> Source | None:
    """The source of a copy from its envelope id, ``q-<topic>-<partition>-<offset>`` (the
    worker's; a topic name may hold hyphens, the two numbers never)."""
    if not envelope_id.startswith("q-"):
        return None
    topic, _, rest = envelope_id[2:].rpartition("-")
    topic, _, part = topic.rpartition("-")
    if not (topic and part.isdigit() and rest.isdigit()):
        return None
    return topic, int(part), int(rest)


def copy_id(partition: int, offset: int) -> str:
    """How --open names a copy: its offset (the quarantine topic has one partition)."""
    return str(offset) if partition == 0 else f"{partition}:{offset}"


def parse_copy_id(value: str) -> tuple[int, int] | None:
    # ASCII digits only: str.isdigit takes "²" (int() then fails) and "٣" (taken as 3).
    found = re.fullmatch(r"(?:([0-9]+):)?([0-9]+)", value)
    if found is None:
        return None
    return int(found[1] or 0), int(found[2])


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _facts_source(rec: AuditRecord) -> Source | None:
    d = rec.data
    topic, part, offset = d.get("topic"), d.get("partition"), d.get("offset")
    if isinstance(topic, str) and isinstance(part, int) and isinstance(offset, int):
        return topic, part, offset
    return None


def join(copies: Iterable[Copy], audited: Iterable[AuditRecord]) -> list[Line]:
    """A line per quarantine, oldest first: each copy with the audit record of the same
    source record (one each, in order: a record quarantined twice has two of each), and
    each audit record without a copy (none sealed, ``held: false``, or past retention)."""
    by_source: dict[Source | None, deque[AuditRecord]] = defaultdict(deque)
    for audit_rec in audited:
        by_source[_facts_source(audit_rec)].append(audit_rec)
    lines: list[tuple[datetime, Line]] = []
    for c in copies:
        found = by_source.get(c.source)
        rec = found.popleft() if found else None
        lines.append(_line(rec, c.source, c))
    for rest in by_source.values():
        lines += [_line(rec, _facts_source(rec), None) for rec in rest]
    lines.sort(key=lambda pair: (pair[0], pair[1].copy or ""))
    return [line for _, line in lines]


def _line(rec: AuditRecord | None, source: Source | None, c: Copy | None) -> tuple[datetime, Line]:
    at = rec.at if rec is not None else c.at if c is not None else datetime.min.replace(tzinfo=UTC)
    topic, part, offset = source if source is not None else (UNKNOWN, None, None)
    sender = rec.party if rec is not None else None
    line = Line(
        time=_when(at),
        reason=str(rec.data.get("reason", UNKNOWN)) if rec is not None else UNKNOWN,
        stage=str(rec.data.get("stage", UNKNOWN)) if rec is not None else UNKNOWN,
        topic=topic,
        partition=part,
        offset=offset,
        sender=sender or party_of_ingress(topic),
        event_id=rec.event_id if rec is not None else None,
        copy=copy_id(c.partition, c.offset) if c is not None else None,
        audit=f"{rec.chain}#{rec.seq}" if rec is not None else None,
        signer_key_id=_text(rec.data.get("signer_key_id")) if rec is not None else None,
        claimed_signer_key_id=(
            _text(rec.data.get("claimed_signer_key_id")) if rec is not None else None
        ),
    )
    return at, line


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def chosen(
    lines: Iterable[Line],
    *,
    since: datetime | None = None,
    reason: str | None = None,
    sender: str | None = None,
    signed_by: str | None = None,
) -> list[Line]:
    """The lines the filters keep; a line whose reason is not known yet has no reason to
    match (it is counted by :func:`unindexed` instead). ``signed_by`` keeps a key's
    records, verified or only claimed."""
    low = _when(since) if since is not None else ""
    return [
        line
        for line in lines
        if line.time >= low
        and (reason is None or line.reason == reason)
        and (sender is None or line.sender == sender)
        and (signed_by is None or signed_by in (line.signer_key_id, line.claimed_signer_key_id))
    ]


def unindexed(lines: Iterable[Line]) -> int:
    return sum(line.audit is None for line in lines)


_COLUMNS = ("COPY", "TIME", "REASON", "STAGE", "SOURCE", "SENDER", "EVENT ID", "SIGNER KEY",
            "AUDIT")  # fmt: skip


def table(lines: Sequence[Line]) -> str:
    if not lines:
        return "no quarantined records"
    rows = [_COLUMNS] + [
        (
            line.copy or "-",
            line.time,
            line.reason,
            line.stage,
            f"{line.topic}[{line.partition}]@{line.offset}" if line.offset is not None else "?",
            line.sender or "-",
            line.event_id or "-",
            _signer(line),
            line.audit or "-",
        )
        for line in lines
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _signer(line: Line) -> str:
    """The signer key: as verified, or marked as a claim nobody checked."""
    if line.signer_key_id:
        return line.signer_key_id
    return f"{line.claimed_signer_key_id} (claimed)" if line.claimed_signer_key_id else "-"


def as_json(lines: Sequence[Line]) -> str:
    return json.dumps([asdict(line) for line in lines], indent=2)


# -- one copy, opened --------------------------------------------------------------------


def _shown(raw: bytes, *, lines: bool = False) -> str:
    """Bytes as text a terminal shows as they are: UTF-8 where it is, every other byte and
    every control character escaped (\\xNN), a backslash doubled (so an escape written in
    the record reads apart from one made here), so a record cannot drive the terminal. A
    line break is kept only where ``lines`` (the value, shown last, each of its lines
    indented): in a key or header it could print a line that looks like one of ours."""
    text = raw.decode("utf-8", "surrogateescape")
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif "\udc80" <= c <= "\udcff":  # a byte that is not UTF-8
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c == "\n" and lines:
            out.append("\n  ")
        elif c == "\t" or c.isprintable():
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
    return "".join(out)


def _b64(value: Any) -> bytes | None:
    return None if value is None else base64.b64decode(str(value))


def opened_text(copy: str, payload: dict[str, Any]) -> str:
    """The opened copy for a reader: facts, then key, headers and value as sent."""
    value = _b64(payload.get("value")) or b""
    key = _b64(payload.get("key"))
    out = [
        f"quarantine copy {copy}: {payload.get('reason')} at {payload.get('stage')}",
        f"source: {payload.get('topic')} partition {payload.get('partition')} "
        f"offset {payload.get('offset')}",
        f"size: {payload.get('size')} bytes, sha-256 {payload.get('digest')}…"
        + ("; the copy is TRUNCATED" if payload.get("truncated") else ""),
        "key: " + ("(none)" if key is None else _shown(key)) if "key" in payload else
        "key: (not kept: copied before the worker kept keys)",
    ]  # fmt: skip
    out += _envelope(value)
    for name, hv in payload.get("headers") or []:
        raw = _b64(hv)
        shown = "(null)" if raw is None else _shown(raw)
        out.append(f"header {_shown(str(name).encode())}: {shown}")
    out += [f"value ({len(value)} bytes held):", "  " + _shown(value, lines=True)]
    return "\n".join(out)


def _envelope(value: bytes) -> list[str]:
    """The routing header of a value that is an envelope: the event id to name to the sender
    (a key-rejected or tampered record's is never audited: nothing authenticated it)."""
    from broker.envelope import read_header
    from broker.errors import EnvelopeError

    try:
        h = read_header(value)
    except EnvelopeError:
        return ["envelope: none (the value is not one)"]
    return [
        f"envelope (unauthenticated): event id {_shown(h.event_id.encode())}, sender "
        f"{_shown(h.sender.encode())}, recipient {_shown(h.recipient.encode())}, schema "
        f"{_shown(h.schema.encode())}"
    ]
