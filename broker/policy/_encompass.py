"""Operation Encompass deadlines: a school hears before the start of the next school day.

The deadline runs from when Accord notified the school (the decision time of the share), not
from the incident: a school cannot be late for a notice it has not yet been sent. It is the
first school-day start strictly after that moment, in the school's local time (UK schools run
on Europe/London, so a deadline follows the clocks across British Summer Time). Weekends are
never school days; holidays and training days come from configuration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from broker.config import SchoolCalendar

__all__ = ["encompass_deadline", "is_late"]

# A calendar with every day closed would never yield a deadline; a school year has no gap
# near this long, so hitting it means the configuration is wrong.
_MAX_CLOSED_RUN = 120


def encompass_deadline(notified_at: datetime, calendar: SchoolCalendar) -> datetime:
    """The start of the first school day strictly after ``notified_at`` (an aware time), in UTC."""
    if notified_at.tzinfo is None:
        raise ValueError("notified_at must be timezone-aware")
    zone = ZoneInfo(calendar.timezone)
    local = notified_at.astimezone(zone)
    day = local.date()
    for _ in range(_MAX_CLOSED_RUN):
        if calendar.is_school_day(day):
            start = datetime.combine(day, calendar.day_starts, tzinfo=zone)
            if start > local:
                return start.astimezone(UTC)
        day += timedelta(days=1)
    raise ValueError(f"no school day within {_MAX_CLOSED_RUN} days of {local.date()}")


def is_late(deadline: datetime, acknowledged_at: datetime | None, now: datetime) -> bool:
    """Late: not acknowledged by the deadline (an acknowledgement after it is still late)."""
    if acknowledged_at is not None:
        return acknowledged_at > deadline
    return now > deadline
