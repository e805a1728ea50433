"""Transforms that generalise a field before it leaves (docs/policy-language.md, Transforms).

``age_band``: completed years at the decision time, banded 0-4, 5-10, 11-15, 16-17, 18+.
``year_of_birth``: the year only. ``postcode_district``: the outward code.
``initials``: ``Jane Smith`` → ``J. S.``. ``pseudonym``: HMAC-SHA256 keyed by the
deployment's pseudonym key over (recipient, field path, value): stable for one recipient,
unlinkable across recipients, and not reversible without the key.

Where clauses that both share with a recipient reduce one field in different ways, the
transform that reveals least of it applies (``least_revealing``), never the one whose clause
comes first in the bundle: a pseudonym shows only that two values are equal, so it comes
before any other; an age band shows less than a year of birth.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from datetime import date
from typing import Final

__all__ = [
    "LEAST_REVEALING",
    "age_band",
    "age_in_years",
    "initials",
    "least_revealing",
    "pseudonym",
    "year_of_birth",
]

#: Every transform, the one revealing least first. Only those that apply to one field are
#: ever weighed against each other: dob's pseudonym, age_band and year_of_birth; a name's
#: pseudonym and initials; a postcode's pseudonym and postcode_district.
LEAST_REVEALING: Final = ("pseudonym", "age_band", "initials", "postcode_district", "year_of_birth")

_BANDS = ((4, "0-4"), (10, "5-10"), (15, "11-15"), (17, "16-17"))
_PARTS = re.compile(r"[\s\-]+")


def age_in_years(dob: date, on: date) -> int:
    # At least 0: a baby born after midnight in England, named while UTC's day is the one
    # before (broker.events' latest_day), is not -1.
    return max(0, on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day)))


def age_band(dob: date, on: date) -> str:
    age = age_in_years(dob, on)
    for upper, label in _BANDS:
        if age <= upper:
            return label
    return "18+"


def year_of_birth(dob: date) -> int:
    return dob.year


def initials(*names: str | None) -> str:
    """Initial of each part of each name, ``"J. S."``; empty names contribute nothing."""
    letters = [
        part[0].upper() + "."
        for name in names
        if name
        for part in _PARTS.split(name.strip())
        if part
    ]
    return " ".join(letters)


def pseudonym(key: bytes, recipient: str, path: str, value: str) -> str:
    return hmac.digest(key, f"{recipient}\x1f{path}\x1f{value}".encode(), "sha256").hex()[:32]


def least_revealing(kinds: Iterable[str]) -> str:
    """Of transforms clauses give one field, the one that applies (see the module's doc)."""
    return min(kinds, key=LEAST_REVEALING.index)
