"""The audit index's seam: the ``AuditStore`` protocol and the values that cross it.

The indexer writes verified records through it; ``accord audit verify --db`` reads them back;
the reports (and the governance console) query it. Two implementations share one SQL schema:
SQLite (embedded default, ``<home>/audit.db``) and PostgreSQL (production). Everything that
crosses the seam holds subject keys, party ids and field names only, never personal values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from broker.audit import AuditKind, AuditRecord


def message_digest(body: bytes) -> str:
    """The digest the index keeps of a message instead of its content: of a record's canonical
    bytes (``AuditRecord.to_bytes``, its ``audit_records`` body), else of the message as read."""
    return hashlib.sha256(body).hexdigest()[:32]


def sql_time(at: datetime) -> str:
    """Fixed-width UTC text: sorts as a string exactly as the instants sort."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window ``[since, until)``; None leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    def bounds(self) -> tuple[str, str]:
        low = sql_time(self.since) if self.since else ""
        high = sql_time(self.until) if self.until else "~"  # '~' sorts after every digit
        return low, high


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest indexed record of a chain; ``broken_seq`` set once the chain failed to verify."""

    chain: str
    seq: int
    hash: str
    broken_seq: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    """A verified record and where it was read from."""

    record: AuditRecord
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OverrideReview:
    """An IG officer's review of a safeguarding override (from an ``override_reviewed`` record)."""

    event_id: str
    party: str
    reviewed_by: str
    finding: str  # a ReviewFinding's value ("" for a review written with a note, before them)
    reference: str  # where the reasoning is kept, or ""
    note: str  # only a review written before findings (the log holds it, so the index does)
    reviewed_at: datetime
    chain: str
    seq: int


@dataclass(frozen=True, slots=True)
class VerifyRun:
    """One verification of the whole index, kept so that a failure is not forgotten when the
    page that showed it is closed: when, who ran it and from where, and what it found (the
    first broken chain, seq and problem: chain names and rule text, never personal data)."""

    at: datetime
    by: str  # the console account, or the command line's login name
    via: str  # "console" or "cli"
    ok: bool
    records: int | None = None  # a pass: what it read
    chains: int | None = None
    chain: str | None = None  # a failure: where
    seq: int | None = None
    problem: str | None = None

    @property
    def failure(self) -> str:
        """The failure as ``accord audit verify`` words it ("" for a pass)."""
        if self.ok:
            return ""
        where = f"audit chain {self.chain!r}" if self.chain else "audit chain"
        return f"{where} broken at seq {self.seq}: {self.problem}"


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """A message of the audit topic the index refused: where, why, a digest, never content."""

    partition: int
    offset: int
    chain: str | None
    seq: int | None
    reason: str
    digest: str


@dataclass
class IndexBatch:
    """Everything one indexing step commits, in ONE database transaction."""

    topic: str
    records: list[IndexedRecord] = field(default_factory=list)
    heads: dict[str, ChainHead] = field(default_factory=dict)
    checkpoints: dict[str, AuditRecord] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)  # partition → next offset
    refused: list[RefusedMessage] = field(default_factory=list)
    # Refused earlier as never signed, indexed now that a valid checkpoint covers them: their
    # ``audit_refused`` rows go (partition, offset).
    unrefused: list[tuple[int, int]] = field(default_factory=list)
    # The stored offsets this batch was verified from; None: apply without checking (tools).
    base_offsets: dict[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(
            self.records
            or self.heads
            or self.checkpoints
            or self.offsets
            or self.refused
            or self.unrefused
        )


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A row of ``audit_records`` as stored: the columns, and the canonical JSON body."""

    chain: str
    seq: int
    at: str
    kind: str
    event_id: str | None
    party: str | None
    outcome: str | None
    reason: str | None
    agreement_id: str | None
    purpose: str | None
    hash: str
    prev_hash: str
    body: str


def derived_columns(rec: AuditRecord) -> dict[str, Any]:
    """The query columns a record's row carries besides its body (all derived from it)."""
    data = rec.data
    outcome = reason = agreement = purpose = None
    if rec.kind in (AuditKind.DECIDED, AuditKind.DELIVERED):
        outcome = _text(data.get("outcome"))
    if rec.kind in (AuditKind.DECIDED, AuditKind.QUARANTINED):
        reason = _text(data.get("reason"))
    if rec.kind is AuditKind.DECIDED:
        agreement = _text(data.get("agreement_id"))
    if rec.kind in (AuditKind.DECIDED, AuditKind.OPENED):
        purpose = _text(data.get("purpose"))
    return {
        "chain": rec.chain,
        "seq": rec.seq,
        "at": sql_time(rec.at),
        "kind": rec.kind.value,
        "event_id": rec.event_id,
        "party": rec.party,
        "outcome": outcome,
        "reason": reason,
        "agreement_id": agreement,
        "purpose": purpose,
        "hash": rec.hash,
        "prev_hash": rec.prev_hash,
    }


#: What makes a decision an Operation Encompass notice: a police domestic incident shared with
#: a school (operation-encompass.yaml's ``encompass`` clause, or any clause doing the same).
ENCOMPASS_EVENT_TYPE = "police.domestic_incident"
ENCOMPASS_RECIPIENT_KIND = "school"


ReviewRow = tuple[str, str, str, str, str, str, str]
"""event, party, reviewed_by, finding, reference, note, reviewed_at."""


def review_row(rec: AuditRecord) -> ReviewRow:
    """An ``override_reviewed`` record's ``override_reviews`` row, less its place (chain,
    seq)."""
    data = rec.data
    return (
        rec.event_id or "",
        rec.party or "",
        str(data.get("reviewed_by", "")),
        str(data.get("finding", "")),
        str(data.get("reference", "")),
        str(data.get("note", "")),
        sql_time(rec.at),
    )


def notice_row(rec: AuditRecord) -> tuple[str, str, str]:
    """An Encompass notice's ``encompass_notices`` row, less its place: event, party, when."""
    return rec.event_id or "", rec.party or "", sql_time(rec.at)


def is_encompass_notice(rec: AuditRecord) -> bool:
    data = rec.data
    return (
        rec.kind is AuditKind.DECIDED
        and rec.event_id is not None
        and rec.party is not None
        and data.get("outcome") in ("shared", "shared_override")
        and data.get("event_type") == ENCOMPASS_EVENT_TYPE
        and data.get("recipient_kind") == ENCOMPASS_RECIPIENT_KIND
    )


@dataclass(frozen=True, slots=True)
class NoticeRow:
    """An Encompass notice as indexed: the event, the school, when the decision sent it, and
    when the school first acknowledged it (its first ``opened`` record), if it has."""

    event_id: str
    school: str
    notified_at: datetime
    acknowledged_at: datetime | None


def parse_sql_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class DerivedRows:
    """The index's tables derived from records, as stored (see ``derived_rows``)."""

    subjects: list[tuple[str, str, int]]  # subject_key, chain, seq
    reviews: list[tuple[ReviewRow, str, int]]  # the row, chain, seq
    notices: list[tuple[str, str, str, str, int]]  # event, party, notified_at, chain, seq


class AuditStore(Protocol):
    """Where verified audit records are indexed and queried (SQLite or PostgreSQL)."""

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    def close(self) -> None: ...

    def schema_version(self) -> int:
        """The newest migration applied."""
        ...

    # -- indexing ------------------------------------------------------------------------

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of ``topic`` (absent: from the beginning)."""
        ...

    def heads(self) -> dict[str, ChainHead]: ...

    def broken_chains(self) -> list[str]:
        """The chains the indexer found broken, sorted (names only): what they hold after
        the break is not in the index, so nothing read from it is complete."""
        ...

    def stored_hash(self, chain: str, seq: int) -> str | None: ...

    def position_of(self, chain: str, seq: int) -> tuple[int, int] | None:
        """Where (partition, offset) the index read the record at ``seq`` of ``chain``."""
        ...

    def refusals_of_chain(
        self,
        topic: str,
        chain: str,
        after_seq: int,
        before_seq: int,
        reasons: Collection[str],
        *,
        per_seq: int,
        limit: int,
    ) -> list[tuple[int, int]]:
        """Where (partition, offset) the messages of ``chain`` strictly between those seqs
        are that were refused for one of ``reasons`` and are still not indexed: in seq order,
        at most ``per_seq`` of each seq (the first in the topic), ``limit`` in all."""
        ...

    def held_before(
        self, topic: str, partition: int, before: int, limit: int
    ) -> list[tuple[int, str]]:
        """The newest ``limit`` offsets of ``partition`` below ``before`` at which the index
        holds a message it read (a record indexed, or a message refused), newest first, each
        with that message's ``message_digest``."""
        ...

    def apply(self, batch: IndexBatch) -> bool:
        """Commit rows, heads, checkpoints, reviews and offsets together, or nothing.

        Nothing, and False, when ``batch.base_offsets`` no longer match the stored offsets of
        the partitions it advances: another indexer committed first.
        """
        ...

    # -- verification --------------------------------------------------------------------

    def snapshot(self) -> AbstractContextManager[None]:
        """Within it, every read sees the index as of one moment, whatever the indexer commits.

        Verification reads rows, heads and checkpoints separately; without one snapshot, a
        checkpoint indexed between two reads would look like a truncated chain.
        """
        ...

    def count(self) -> int: ...

    def chains(self) -> list[str]:
        """Every chain the index knows of: from records, heads or checkpoints."""
        ...

    def rows(self, chain: str) -> Iterator[StoredRow]:
        """The chain's rows in ``seq`` order."""
        ...

    def latest_checkpoint(self, chain: str) -> AuditRecord | None: ...

    def derived_rows(self) -> DerivedRows:
        """Every row of the tables built from records rather than holding them (what
        ``verify --db`` checks against the records)."""
        ...

    # -- queries (reports, console) ------------------------------------------------------

    def subject_records(self, subject_key: str) -> list[AuditRecord]:
        """Decisions and deliveries naming the subject, ``opened`` records of those that were
        shared, consent records (filed or refused) and withdrawal notices naming them, and
        ``received`` records naming them with no decision naming them after them on their
        chain (``_sql_received``)."""
        ...

    def quarantined_receipts(
        self, receipts: Collection[tuple[str, int, str]]
    ) -> set[tuple[str, int]]:
        """Those of ``receipts`` (``(chain, seq, event_id)`` of ``received`` records, each
        the last of its event on its chain) whose processing ended in quarantine."""
        ...

    def unsent_shares(self, shares: Collection[tuple[str, int, str, str]]) -> set[tuple[str, int]]:
        """Those of ``shares`` (``(chain, seq, event_id, recipient)`` of decisions that
        shared) whose event was quarantined after them with no delivery to that recipient
        between: never sent."""
        ...

    def received_signed_by(self, key_id: str, window: Window) -> list[AuditRecord]:
        """The ``received`` records in ``window`` whose envelopes verified under ``key_id``
        (their ``signer_key_id``), oldest first."""
        ...

    def delivered_after(
        self, receipts: Collection[tuple[str, int, str]]
    ) -> dict[tuple[str, int], tuple[str, ...]]:
        """The parties each receipt ``(chain, seq, event_id)`` was delivered to, by
        ``(chain, seq)`` (``_sql_received.delivered_after``)."""
        ...

    def decision_counts(self, window: Window) -> list[tuple[str | None, str, str, str | None, int]]:
        """``(agreement_id, recipient, outcome, reason, n)`` for decisions in the window."""
        ...

    def pending_overrides(self) -> list[AuditRecord]:
        """``shared_override`` decisions with no review yet, oldest first."""
        ...

    def quarantine_counts(self, window: Window) -> list[tuple[str, int]]: ...

    def quarantined(self, window: Window) -> list[AuditRecord]:
        """``quarantined`` records in ``window``, oldest first (``accord audit quarantine``)."""
        ...

    def refused_counts(self) -> list[tuple[str, int]]:
        """``(reason, n)``: messages of the audit topic the indexer refused, ever."""
        ...

    def decisions_per_day(self, window: Window) -> list[tuple[str, str, int]]:
        """``(YYYY-MM-DD, outcome, n)`` for decisions in the window, by UTC day."""
        ...

    def subject_lookups(self, subject_key: str) -> list[AuditRecord]:
        """``console_query`` and ``quarantine_opened`` records naming the subject (who looked
        at this child's log, who opened a quarantined record naming them)."""
        ...

    def delivery_counts(self, window: Window) -> list[tuple[str, int, int]]:
        """``(recipient, delivered, never opened)`` for deliveries in the window."""
        ...

    def find_decision(self, event_id: str, party: str) -> AuditRecord | None: ...

    def withdrawal_notices(self, window: Window) -> list[AuditRecord]:
        """``consent_withdrawn_notice`` records logged in the window, oldest first."""
        ...

    def policy_impacts(self, window: Window) -> list[AuditRecord]:
        """``policy_impact`` records (runs of ``accord policy impact``) logged in the window,
        newest first."""
        ...

    def keys_loaded(self, window: Window) -> list[AuditRecord]:
        """``keys_loaded`` records (the worker's keystore: ``_keys_loaded``) logged in the
        window, oldest first."""
        ...

    def encompass_notices(self, window: Window, *, unacknowledged: bool = False) -> list[NoticeRow]:
        """Encompass notices decided in the window (only those never acknowledged, with
        ``unacknowledged``), oldest first."""
        ...

    def encompass_unsent(self, window: Window) -> list[NoticeRow]:
        """Decisions in the window that would have been Encompass notices but were refused
        for want of the school's key (``recipient-key-unavailable``), oldest first: never
        sent, so never to be read (``acknowledged_at`` is None)."""
        ...

    def review_of(self, event_id: str, party: str) -> OverrideReview | None: ...

    def reviews(self, window: Window) -> list[OverrideReview]:
        """Override reviews filed in the window (by when they were written), newest first."""
        ...

    # -- verification results ------------------------------------------------------------

    def keep_verification(self, run: VerifyRun) -> None:
        """Keep a verification's result (``AuditError`` if the index cannot be written)."""
        ...

    def last_verification(self) -> VerifyRun | None:
        """The newest verification result kept, if any."""
        ...
