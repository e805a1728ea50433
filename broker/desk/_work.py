"""The desk's pure core: timelines, the events a decision publishes, Encompass deadlines.

Nothing here touches Kafka, a database or HTTP, so it runs in unit tests as it runs live.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.config import SchoolCalendar
from broker.desk._flag import child_keys
from broker.desk._store import StoredRecord
from broker.desk._stored import OUTCOME_TYPE
from broker.policy import encompass_deadline, is_late

__all__ = [
    "ENCOMPASS_TYPE",
    "OUTCOME_TYPE",
    "REFERRAL_TYPE",
    "EncompassNotice",
    "child_subject",
    "encompass_notice",
    "outcome_event",
    "referral_event",
]

REFERRAL_TYPE = "coordination.referral"
ENCOMPASS_TYPE = "police.domestic_incident"
_SUBJECT_FIELDS = (
    "role", "nhs_number", "given_name", "family_name", "dob", "address", "postcode",
    "school_urn",
)  # fmt: skip


def child_subject(
    records: Sequence[StoredRecord], child: str, secret: bytes
) -> dict[str, Any] | None:
    """What the desk knows of the child, from the records it holds (newest wins per field).
    ``child`` may be a legacy key (a child that has no key now has only that)."""
    found: dict[str, Any] = {}
    for record in records:  # oldest first
        if record.hidden:
            continue
        for subject in record.view.get("subjects") or ():
            if isinstance(subject, Mapping) and child in child_keys(secret, subject):
                found.update({k: subject[k] for k in _SUBJECT_FIELDS if subject.get(k)})
    if not found:
        return None
    found["role"] = "child"
    return found


def referral_event(
    *,
    party: str,
    records: Sequence[StoredRecord],
    child: str,
    secret: bytes,
    reason: str,
    at: datetime,
) -> dict[str, Any] | None:
    """The ``coordination.referral`` a "refer" decision publishes, or None if the desk holds
    nothing identifying the child (no referral can be routed without a subject)."""
    subject = child_subject(records, child, secret)
    if subject is None:
        return None
    shown = [r for r in records if not r.hidden]
    levels = [r.need_level for r in shown if r.need_level is not None]
    categories = sorted({c for r in shown for c in r.view.get("categories") or ()})
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "type": REFERRAL_TYPE,
        "sender": party,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "reference": f"DESK-{event_id[:8].upper()}",
        "need_level": max(levels) if levels else 2,
        "summary": reason,
        "categories": categories,
        "subjects": [subject],
    }


def outcome_event(
    *, party: str, referral: StoredRecord, outcome: str, summary: str, at: datetime
) -> dict[str, Any]:
    """The ``coordination.referral_outcome`` a hub publishes (reference: the referral's id)."""
    subjects = [
        {k: s[k] for k in _SUBJECT_FIELDS if s.get(k)}
        for s in referral.view.get("subjects") or ()
        if isinstance(s, Mapping) and s.get("role", "child") == "child"
    ]
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": OUTCOME_TYPE,
        "sender": party,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "reference": referral.event_id,
        "outcome": outcome,
        "summary": summary,
        "subjects": [dict(s, role="child") for s in subjects],
    }
    if referral.need_level is not None:
        event["need_level"] = referral.need_level
    return event


@dataclass(frozen=True, slots=True)
class EncompassNotice:
    record: StoredRecord
    deadline: datetime
    acknowledged_by: str | None  # who pressed "Acknowledge as read", and when
    acknowledged_at: datetime | None
    late: bool
    opened_by: str | None = None  # who first opened it, its acknowledgement sent, and when
    opened_at: datetime | None = None

    @property
    def read_at(self) -> datetime | None:
        """When it was first read, as the central side counts it: the first acknowledgement
        the desk sent for it (an opening, or the button's own)."""
        times = [t for t in (self.opened_at, self.acknowledged_at) if t is not None]
        return min(times) if times else None


def encompass_notice(
    record: StoredRecord,
    ack: tuple[str, datetime] | None,
    *,
    calendar: SchoolCalendar,
    now: datetime,
    opened: tuple[str, datetime] | None = None,
) -> EncompassNotice:
    """The deadline runs from the share's decision time (the school is notified then). Read
    in time if first opened (``opened``: by whom, when) or acknowledged as read (``ack``) by
    then: ``accord audit report`` counts a notice read at the school's first access
    acknowledgement, which opening it sends (docs/governance.md, Operation Encompass)."""
    deadline = encompass_deadline(record.decided_at, calendar)
    by, at = ack if ack is not None else (None, None)
    opened_by, opened_at = opened if opened is not None else (None, None)
    first = min((t for t in (opened_at, at) if t is not None), default=None)
    return EncompassNotice(
        record, deadline, by, at, is_late(deadline, first, now), opened_by, opened_at
    )
