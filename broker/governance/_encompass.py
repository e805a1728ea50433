"""Operation Encompass lateness, from the audit index: which schools heard and did not read.

A notice is a decision that shared a police domestic incident with a school
(``_store.is_encompass_notice``). Its deadline is the start of the next school day after the
decision (``broker.policy.encompass_deadline``, on the configured ``SchoolCalendar``); the
school acknowledges it by opening it (its first ``opened`` record for that event, timed by
the broker). It is late when the acknowledgement came after the deadline, or when none has
come and the deadline has passed (``broker.policy.is_late``). A decision that would have been
a notice but found the school with no key to seal to was never sent (``UnsentNotice``).

Only event ids, school party ids and times: a notice names no child here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from broker.config import SchoolCalendar
from broker.governance._store import AuditStore, NoticeRow, Window
from broker.policy import encompass_deadline, is_late


@dataclass(frozen=True, slots=True)
class EncompassNotice:
    event_id: str
    school: str
    notified_at: datetime
    deadline: datetime
    acknowledged_at: datetime | None

    @property
    def state(self) -> Literal["acknowledged late", "open past deadline"]:
        return "open past deadline" if self.acknowledged_at is None else "acknowledged late"


@dataclass(frozen=True, slots=True)
class UnsentNotice:
    """A notice never sent: the decision would have shared the incident with the school, but
    the school had no usable key to seal it to (``recipient-key-unavailable``). Worse than
    late: it will never be read, and the school's Key Adult must be told by other means."""

    event_id: str
    school: str
    decided_at: datetime


def unsent_encompass_notices(store: AuditStore, window: Window | None = None) -> list[UnsentNotice]:
    """Notices decided in ``window`` and never sent for want of the school's key, by school,
    then oldest first."""
    rows = store.encompass_unsent(window or Window())
    unsent = [UnsentNotice(row.event_id, row.school, row.notified_at) for row in rows]
    return sorted(unsent, key=lambda n: (n.school, n.decided_at, n.event_id))


def _notice(row: NoticeRow, calendar: SchoolCalendar, now: datetime) -> EncompassNotice:
    deadline = encompass_deadline(row.notified_at, calendar)
    # As the index stood at ``now``: an opening recorded later had not happened yet.
    acked = row.acknowledged_at if row.acknowledged_at and row.acknowledged_at <= now else None
    return EncompassNotice(row.event_id, row.school, row.notified_at, deadline, acked)


def late_encompass_notices(
    store: AuditStore, calendar: SchoolCalendar, now: datetime, window: Window | None = None
) -> list[EncompassNotice]:
    """Notices decided in ``window`` that were acknowledged late or are still open past their
    deadline at ``now``, by school, then oldest first."""
    rows = store.encompass_notices(window or Window())
    notices = [_notice(row, calendar, now) for row in rows if row.notified_at <= now]
    late = [n for n in notices if is_late(n.deadline, n.acknowledged_at, now)]
    return sorted(late, key=lambda n: (n.school, n.notified_at, n.event_id))


def overdue_encompass_notices(
    store: AuditStore, calendar: SchoolCalendar, now: datetime
) -> list[EncompassNotice]:
    """Notices never acknowledged whose deadline has passed at ``now`` (what the metric and
    the alert watch)."""
    rows = store.encompass_notices(Window(until=now), unacknowledged=True)
    notices = [_notice(row, calendar, now) for row in rows]
    return [n for n in notices if is_late(n.deadline, None, now)]


def late_by_school(notices: list[EncompassNotice] | list[UnsentNotice]) -> dict[str, int]:
    return dict(sorted(Counter(n.school for n in notices).items()))
