"""Reviewing a safeguarding override: the reviewer's action is itself an audit record.

The review is never written to the index directly. It is appended to the reviewer's own chain
(``console:<host>``) on ``accord.audit`` by a :class:`ChainAppender`, with a signed checkpoint,
and the indexer files it in ``override_reviews`` when it reads it back, so no
review can exist that the tamper-evident log does not hold.
"""

from __future__ import annotations

from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.errors import UsageError
from broker.governance._append import AuditSink
from broker.governance._store import AuditStore

MAX_NOTE = 2000


def check_review_text(*, reviewed_by: str, note: str) -> None:
    """``UsageError`` unless the reviewer and the note are given (before anything is opened)."""
    if not reviewed_by.strip():
        raise UsageError("--as: name the console account that reviewed the override")
    if not note.strip() or len(note) > MAX_NOTE:
        raise UsageError(f"--note: give a review note of 1 to {MAX_NOTE} characters")


def check_reviewable(
    store: AuditStore, event_id: str, recipient: str, *, reviewed_by: str, note: str
) -> AuditRecord:
    """The override decision to review; ``UsageError`` when there is none or it is reviewed."""
    check_review_text(reviewed_by=reviewed_by, note=note)
    decision = store.find_decision(event_id, recipient)
    if decision is None or decision.data.get("outcome") != "shared_override":
        raise UsageError(
            f"no safeguarding override for event {event_id} to {recipient} in the audit index"
        )
    done = store.review_of(event_id, recipient)
    if done is not None:
        raise UsageError(
            f"the override for event {event_id} to {recipient} was already reviewed "
            f"by {done.reviewed_by} at {done.reviewed_at.isoformat()}"
        )
    return decision


def review_record(
    writer: ChainWriter, decision: AuditRecord, *, reviewed_by: str, note: str
) -> AuditRecord:
    """The ``override_reviewed`` record for ``decision``, appended to ``writer``'s chain."""
    return writer.append(
        AuditKind.OVERRIDE_REVIEWED,
        event_id=decision.event_id,
        party=decision.party,
        subject_keys=decision.subject_keys,
        data={
            "reviewed_by": reviewed_by.strip(),
            "note": note.strip(),
            "decision": {"chain": decision.chain, "seq": decision.seq, "hash": decision.hash},
        },
    )


async def review_override(
    store: AuditStore,
    appender: AuditSink,
    *,
    event_id: str,
    recipient: str,
    reviewed_by: str,
    note: str,
) -> AuditRecord:
    """Mark an override reviewed with a note, by writing it to the audit log (then index it)."""
    decision = check_reviewable(store, event_id, recipient, reviewed_by=reviewed_by, note=note)
    records = await appender.append(
        lambda writer: [review_record(writer, decision, reviewed_by=reviewed_by, note=note)]
    )
    return records[0]
