"""Operation Encompass deadlines: the start of the next school day after the notice."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from pydantic import ValidationError

from broker.config import SchoolCalendar
from broker.policy import encompass_deadline, is_late

CAL = SchoolCalendar()


def test_an_evening_notice_is_due_at_half_past_eight_next_morning_in_london_time() -> None:
    # Wednesday 2026-12-02 21:00 UTC (GMT) → Thursday 08:30 GMT.
    got = encompass_deadline(datetime(2026, 12, 2, 21, 0, tzinfo=UTC), CAL)
    assert got == datetime(2026, 12, 3, 8, 30, tzinfo=UTC)


def test_summer_time_moves_the_deadline_an_hour_earlier_in_utc() -> None:
    got = encompass_deadline(datetime(2026, 6, 10, 20, 0, tzinfo=UTC), CAL)
    assert got == datetime(2026, 6, 11, 7, 30, tzinfo=UTC)


def test_an_early_morning_notice_is_due_the_same_morning() -> None:
    got = encompass_deadline(datetime(2026, 12, 3, 6, 0, tzinfo=UTC), CAL)
    assert got == datetime(2026, 12, 3, 8, 30, tzinfo=UTC)


def test_weekends_and_closed_days_are_skipped() -> None:
    cal = SchoolCalendar(closed=frozenset({date(2026, 12, 7)}))
    # Friday evening → Monday closed → Tuesday.
    got = encompass_deadline(datetime(2026, 12, 4, 18, 0, tzinfo=UTC), cal)
    assert got == datetime(2026, 12, 8, 8, 30, tzinfo=UTC)


def test_a_notice_during_the_school_day_is_due_next_school_day() -> None:
    cal = SchoolCalendar(day_starts=time(9, 0))
    got = encompass_deadline(datetime(2026, 12, 3, 10, 0, tzinfo=UTC), cal)
    assert got == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationError):
        SchoolCalendar(timezone="Europe/Lundon")


def test_late_means_not_acknowledged_by_the_deadline() -> None:
    due = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
    before, after = due.replace(hour=8), due.replace(hour=9)
    assert not is_late(due, before, after)
    assert is_late(due, after, after)
    assert is_late(due, None, after)
    assert not is_late(due, None, before)
