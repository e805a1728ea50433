"""What flag rules see of a window of records: the record layout and its aggregates.

A child's and a household's state keep records as JSON lists (so a faust table stores them
as they are), both laid out ``[occurred µs, arrival, event id, sender, type, need,
[categories], ...]``; a household's records add the children they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["aggregates", "from_micros", "micros"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
T, SEQ, ID, SENDER, TYPE, NEED, CATS = range(7)


def micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def time_of(rec: Sequence[Any]) -> int:
    return int(rec[T])


def aggregates(window: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """What a rule's ``when`` sees of a window (docs/policy-language.md, "Flag rules")."""
    return {
        "contacts": len(window),
        "distinct_agencies": len({r[SENDER] for r in window}),
        "max_need": max((r[NEED] for r in window), default=0),
        "categories": sorted({c for r in window for c in r[CATS]}),
        "types": sorted({r[TYPE] for r in window}),
        "senders": sorted({r[SENDER] for r in window}),
    }
