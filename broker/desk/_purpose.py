"""What a person's opening of a record is acknowledged for: what the record was shared for.

One rule on every page (timeline, referral, notice, record, search): the ``purpose`` of an
access acknowledgement is the purpose the agreement shared the record for, never the desk's
kind or the page's. That is what an information-governance officer checks a use against
(purpose limitation): a police contact shared for safeguarding and opened on the team's
timeline was read for safeguarding, not for "triage" because of the page it is on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from broker.desk._stored import StoredRecord

__all__ = ["UNSTATED", "by_purpose", "purpose_of"]

# A purpose as an acknowledgement carries it (broker.events.AccessAck).
_PURPOSE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
#: For a record whose purpose no acknowledgement can carry. The broker's policies allow only
#: such purposes, so only a record from elsewhere gets it; the audit log then says so plainly
#: rather than lending it the desk's own.
UNSTATED = "unstated"


def purpose_of(record: StoredRecord) -> str:
    return record.purpose if _PURPOSE.fullmatch(record.purpose) else UNSTATED


def by_purpose(records: Sequence[StoredRecord]) -> dict[str, list[StoredRecord]]:
    """The records grouped by what they were shared for, purposes in order (one send each)."""
    grouped: dict[str, list[StoredRecord]] = {}
    for record in records:
        grouped.setdefault(purpose_of(record), []).append(record)
    return dict(sorted(grouped.items()))
