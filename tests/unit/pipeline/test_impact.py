"""The impact report's arithmetic: shares that stop or start, fields gained or lost, and
decisions that do not change, per agreement, recipient and reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.cli._impact import parse_since
from broker.errors import UsageError
from broker.pipeline import ImpactRow, compare
from broker.pipeline._impact import Decided


def _shared(agreement: str, *fields: str) -> Decided:
    return Decided(True, "shared", None, agreement, frozenset(fields))


def _not(reason: str) -> Decided:
    return Decided(False, "not_shared", reason, None, frozenset())


def test_stops_starts_and_field_changes_are_counted_apart() -> None:
    before = {
        ("e1", "coord"): _shared("a", "name", "location"),
        ("e2", "coord"): _shared("a", "name"),
        ("e3", "coord"): _not("no-clause"),
        ("e4", "hub"): _shared("b", "name"),
        ("e5", "coord"): _shared("a", "name", "location"),
    }
    after = {
        ("e1", "coord"): _shared("a", "name"),  # loses location
        ("e2", "coord"): _not("condition-false"),  # stops
        ("e3", "coord"): _shared("a2", "name", "dob"),  # starts
        ("e5", "coord"): _shared("a", "name", "location"),  # unchanged
        # e4/hub: no longer a candidate at all
    }
    impact = compare(before, after, versions=("v1", "v2"))
    assert impact.rows == [
        ImpactRow("starts", "a2", "coord", "no-clause", 1),
        ImpactRow("stops", "a", "coord", "condition-false", 1),
        ImpactRow("stops", "b", "hub", "not-a-candidate", 1),
    ]
    assert impact.lost == {"coord": {"location": 1}}
    assert impact.gained == {}
    assert (impact.events, impact.decisions, impact.unchanged) == (5, 5, 1)
    back = compare(after, before, versions=("v2", "v1"))
    assert back.gained == {"coord": {"location": 1}}
    assert {r.change for r in back.rows} == {"starts", "stops"}


def test_a_not_shared_decision_whose_reason_changes_is_unchanged() -> None:
    impact = compare({("e", "r"): _not("no-clause")}, {("e", "r"): _not("consent-missing")},
                     versions=("v1", "v2"))  # fmt: skip
    assert (impact.rows, impact.unchanged) == ([], 1)


def test_since_takes_durations_and_dates_and_refuses_anything_else_in_one_line() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("36h", now) == now - timedelta(hours=36)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since(None, now) is None
    with pytest.raises(UsageError, match="--since"):
        parse_since("last week", now)
