"""What the desk store hands the pages: a stored record, flag and decision, and their rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "BY_ID",
    "DECISION_COLUMNS",
    "OUTCOME_TYPE",
    "RECORD_COLUMNS",
    "R_COLUMNS",
    "StoredDecision",
    "StoredFlag",
    "StoredRecord",
    "as_text",
    "decision_row",
    "record_row",
]

#: A hub's answer to a referral: ``_work`` makes one, ``_store_since`` counts them.
OUTCOME_TYPE = "coordination.referral_outcome"


def as_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    event_id: str
    event_type: str
    sender: str
    reference: str | None
    occurred_at: datetime | None
    decided_at: datetime
    received_at: datetime
    purpose: str
    outcome: str
    decision: dict[str, Any]
    view: dict[str, Any]
    hidden: bool
    hidden_reason: str | None

    @property
    def need_level(self) -> int | None:
        level = self.view.get("need_level")
        return level if isinstance(level, int) else None


@dataclass(frozen=True, slots=True)
class StoredFlag:
    flag_id: str
    rule: str
    title: str
    child: str
    event_ids: tuple[str, ...]
    raised_at: datetime
    decided: bool
    # None for a flag stored before 2026-12-06, when the desk did not keep them.
    trigger_event_id: str | None = None
    window_seconds: int | None = None
    household: str | None = None
    # Every record it was raised on has been withdrawn since (consent withdrawn): it says
    # nothing now.
    withdrawn: bool = False
    # The flag service said it takes the flag back once its records are all withdrawn
    # (``Flag.withdrawable``): a withdrawn one then no longer stops a new flag under its
    # rule. False for a flag an older service raised: withdrawn or not, it stops one until
    # its window ends.
    withdrawable: bool = False

    @property
    def window_ends(self) -> datetime | None:
        """From when a record's ``occurred_at`` is past this flag's window (None: the window
        was not recorded), so that it may raise a new flag under the rule."""
        if self.window_seconds is None:
            return None
        return self.raised_at + timedelta(seconds=self.window_seconds)


@dataclass(frozen=True, slots=True)
class StoredDecision:
    decision_id: str
    flag_ids: tuple[str, ...]  # the flags it settled (none: a decision about the child)
    child: str | None
    subject_event: str | None
    action: str
    reason: str
    decided_by: str
    decided_at: datetime
    published_event: str | None


RECORD_COLUMNS = (
    "event_id, event_type, sender, reference, occurred_at, decided_at, received_at, purpose, "
    "outcome, decision, view, hidden, hidden_reason"
)
R_COLUMNS = ", ".join("r." + c.strip() for c in RECORD_COLUMNS.split(","))
BY_ID = f"SELECT {RECORD_COLUMNS} FROM desk_records WHERE event_id = ?"  # noqa: S608  # constant
DECISION_COLUMNS = (
    "decision_id, flag_id, child, subject_event, action, reason, decided_by, decided_at, "
    "published_event"
)


def record_row(row: Sequence[Any]) -> StoredRecord:
    return StoredRecord(
        event_id=row[0], event_type=row[1], sender=row[2], reference=row[3],
        occurred_at=_dt(row[4]), decided_at=datetime.fromisoformat(row[5]),
        received_at=datetime.fromisoformat(row[6]), purpose=row[7], outcome=row[8],
        decision=json.loads(row[9]), view=json.loads(row[10]), hidden=bool(row[11]),
        hidden_reason=row[12],
    )  # fmt: skip


def decision_row(row: Sequence[Any], flags: Sequence[str]) -> StoredDecision:
    settled = tuple(dict.fromkeys([*([row[1]] if row[1] else []), *flags]))
    return StoredDecision(
        decision_id=row[0], flag_ids=settled, child=row[2], subject_event=row[3], action=row[4],
        reason=row[5], decided_by=row[6], decided_at=datetime.fromisoformat(row[7]),
        published_event=row[8],
    )  # fmt: skip
