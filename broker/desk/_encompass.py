"""Operation Encompass deadlines: a school hears before the start of the next school day.

The deadline runs from when Accord notified the school (the decision time of the share), not
from the incident: a school cannot be late for a notice it has not yet been sent. It is the
first school-day start strictly after that moment, in the school's local time (UK schools run
on Europe/London, so a deadline follows the clocks across British Summer Time). Weekends are
never school days; holidays and training days come from configuration.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["SchoolCalendar", "encompass_deadline", "is_late"]

# A calendar with every day closed would never yield a deadline; a school year has no gap
# near this long, so hitting it means the configuration is wrong.
_MAX_CLOSED_RUN = 120


class SchoolCalendar(BaseModel):
    """When school days start, in which timezone, and which weekdays are closed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day_starts: time = time(8, 30)
    timezone: str = "Europe/London"
    closed: frozenset[date] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        # A typo must be refused, not become UTC silently; ZoneInfo's error is a KeyError,
        # which pydantic would not report as a validation error.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    def is_school_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closed


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
