"""Transforms that generalise a field before it leaves (docs/policy-language.md, Transforms).

``age_band``: completed years at the decision time, banded 0-4, 5-10, 11-15, 16-17, 18+.
``year_of_birth``: the year only. ``postcode_district``: the outward code.
``initials``: ``Jane Smith`` → ``J. S.``. ``pseudonym``: HMAC-SHA256 keyed by the
deployment's pseudonym key over (recipient, field path, value): stable for one recipient,
unlinkable across recipients, and not reversible without the key.
"""

from __future__ import annotations

import hmac
import re
from datetime import date

__all__ = ["age_band", "age_in_years", "initials", "pseudonym", "year_of_birth"]

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
