"""Reviewing a safeguarding override: the reviewer's action is itself an audit record.

The review is never written to the index directly. It is appended to the reviewer's own chain
(``console:<host>``) on ``accord.audit`` by a :class:`ChainAppender`, with a signed checkpoint,
and the indexer files it in ``override_reviews`` when it reads it back, so no
review can exist that the tamper-evident log does not hold.

A review carries no free text. The log is append-only and kept forever, so a note about a
child written into it could never be corrected or erased. The record holds the officer's
finding (:class:`ReviewFinding`) and, optionally, a reference to where the reasoning is kept,
constrained to an identifier. Reviews written before this rule kept a ``note``; the indexer
still files it, as the log holds it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.errors import UsageError
from broker.events import holds_nhs_or_telephone_number
from broker.governance._append import AuditSink
from broker.governance._store import AuditStore


class ReviewFinding(enum.StrEnum):
    """What the reviewing officer concluded about a safeguarding override."""

    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not_justified"


# A reference to where the reasoning is kept (an IG case, a ticket): an identifier, never a
# narrative (no spaces, 40 characters). A case or ticket reference always carries its number,
# so one with no digit is refused: it is a name written as an identifier (Jane-Smith) or a
# word, and the log must hold subject keys only. So are the shapes a name with a number
# takes: two words joined (Christine.Bailey-1, jane_smith2026, ChristineBailey1) and one
# word with a number of one or two digits straight after it (smith01, Amy1). A case system's
# own shapes are taken: a prefix then its number (Datix-12345, Case-2026-14, ticket-42,
# SAFEGUARD-12, INC0012345). A single name then a separate number (Christine-1), or in
# capitals (SMITH-J-01), cannot be told from one; the form and the help ask for the number.
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,39}\Z")
_A_DIGIT = re.compile(r"[0-9]")
_WORD = r"[A-Za-z][a-z]+"
_TWO_WORDS = re.compile(rf"{_WORD}(?:[._-]+|(?<=[a-z])(?=[A-Z])){_WORD}")
_WORD_AND_DIGITS = re.compile(r"(?=[A-Za-z]*[a-z])[A-Za-z]{2,}[0-9]{1,2}\Z")
_HEX = frozenset("abcdefABCDEF._-")


def _names_a_person(reference: str) -> bool:
    # Two runs of hex letters (a UUID's "fab-cdef") are an id, not two words.
    two = [m for m in _TWO_WORDS.finditer(reference) if not set(m.group()) <= _HEX]
    return bool(two) or bool(_WORD_AND_DIGITS.match(reference))


def reference_acceptable(reference: str) -> bool:
    """Whether ``reference`` may go into the log as a review's reference (and be drawn again
    on a refused form: one that is not might hold a number, a name or a note about a person)."""
    return (
        bool(_REFERENCE.match(reference))
        and bool(_A_DIGIT.search(reference))
        and not _names_a_person(reference)
        and not holds_nhs_or_telephone_number(reference)
    )


def check_review(*, reviewed_by: str, finding: str, reference: str | None) -> ReviewFinding:
    """The finding, or ``UsageError`` unless the review can go into the log as given."""
    if not reviewed_by.strip():
        raise UsageError("--as: name the console account that reviewed the override")
    try:
        found = ReviewFinding(finding.replace("-", "_"))
    except ValueError:
        raise UsageError("--finding: give justified or not-justified") from None
    if reference is not None and not reference_acceptable(reference):
        raise UsageError(
            "--reference: give the IG case or ticket reference where your reasoning is kept, "
            "which carries its case number, e.g. IG-2026-0142 (up to 40 letters, digits and "
            ". _ / : -, never an NHS or telephone number however it is grouped), never a note "
            "or a name, even with a number added"
        )
    return found


def check_reviewable(store: AuditStore, event_id: str, recipient: str) -> AuditRecord:
    """The override decision to review; ``UsageError`` when there is none or it is reviewed."""
    decision = store.find_decision(event_id, recipient)
    # The values typed are not repeated: a mistyped id or recipient may be an NHS number or
    # a name, and the message reaches a terminal, a flash message and the logs.
    if decision is None or decision.data.get("outcome") != "shared_override":
        raise UsageError("no safeguarding override for that event and recipient in the audit index")
    done = store.review_of(event_id, recipient)
    if done is not None:
        raise UsageError(
            "the override for that event and recipient was already reviewed "
            f"by {done.reviewed_by} at {done.reviewed_at.isoformat()}"
        )
    return decision


def review_record(
    writer: ChainWriter,
    decision: AuditRecord,
    *,
    reviewed_by: str,
    finding: ReviewFinding,
    reference: str | None,
) -> AuditRecord:
    """The ``override_reviewed`` record for ``decision``, appended to ``writer``'s chain."""
    data: dict[str, Any] = {
        "reviewed_by": reviewed_by.strip(),
        "finding": finding.value,
        "decision": {"chain": decision.chain, "seq": decision.seq, "hash": decision.hash},
    }
    if reference is not None:
        data["reference"] = reference
    return writer.append(
        AuditKind.OVERRIDE_REVIEWED,
        event_id=decision.event_id,
        party=decision.party,
        subject_keys=decision.subject_keys,
        data=data,
    )


async def review_override(
    store: AuditStore,
    appender: AuditSink,
    *,
    event_id: str,
    recipient: str,
    reviewed_by: str,
    finding: str,
    reference: str | None = None,
) -> AuditRecord:
    """Record an officer's finding on an override in the audit log (then index it)."""
    found = check_review(reviewed_by=reviewed_by, finding=finding, reference=reference)
    decision = check_reviewable(store, event_id, recipient)
    records = await appender.append(
        lambda writer: [
            review_record(
                writer, decision, reviewed_by=reviewed_by, finding=found, reference=reference
            )
        ]
    )
    return records[0]


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    """Where an override's review stands: awaiting one, or the officer's finding (a review
    written before findings kept a note instead, which is not repeated: it is free text)."""

    reviewed: bool
    finding: str | None = None  # a ReviewFinding's value; "" for a review with a note
    reviewed_by: str | None = None
    reference: str | None = None
    reviewed_at: datetime | None = None

    @property
    def finding_text(self) -> str:
        return (self.finding or "noted (before findings)").replace("_", " ")

    def text(self) -> str:
        """``not justified by ig.jo at 2026-11-23T09:00:00+00:00, ref IG-2026-114``."""
        if not self.reviewed:
            return "awaiting review"
        at = self.reviewed_at.isoformat() if self.reviewed_at else ""
        ref = f", ref {self.reference}" if self.reference else ""
        return f"{self.finding_text} by {self.reviewed_by} at {at}{ref}"

    def as_dict(self) -> dict[str, Any]:
        if not self.reviewed:
            return {"state": "awaiting_review"}
        return {
            "state": "reviewed",
            "finding": self.finding or None,
            "reviewed_by": self.reviewed_by,
            "reference": self.reference or None,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
        }


def review_status(store: AuditStore, event_id: str, recipient: str) -> ReviewStatus:
    review = store.review_of(event_id, recipient)
    if review is None:
        return ReviewStatus(reviewed=False)
    return ReviewStatus(True, review.finding, review.reviewed_by, review.reference,
                        review.reviewed_at)  # fmt: skip
