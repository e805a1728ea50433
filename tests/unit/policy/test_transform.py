"""Transforms: age bands at the decision date, initials, pseudonyms."""

from __future__ import annotations

from datetime import date

import pytest

from broker.policy._transform import age_band, age_in_years, initials, pseudonym


@pytest.mark.parametrize(
    ("dob", "band"),
    [
        (date(2026, 11, 22), "0-4"),
        (date(2021, 11, 23), "0-4"),  # turns 5 tomorrow
        (date(2021, 11, 22), "5-10"),  # 5 today
        (date(2015, 11, 23), "5-10"),
        (date(2015, 11, 22), "11-15"),
        (date(2010, 11, 23), "11-15"),
        (date(2010, 11, 22), "16-17"),
        (date(2008, 11, 23), "16-17"),
        (date(2008, 11, 22), "18+"),
        (date(1950, 1, 1), "18+"),
    ],
)
def test_age_band_uses_completed_years_at_the_decision_date(dob: date, band: str) -> None:
    assert age_band(dob, date(2026, 11, 22)) == band


def test_age_of_a_leap_day_baby() -> None:
    assert age_in_years(date(2020, 2, 29), date(2025, 2, 28)) == 4
    assert age_in_years(date(2020, 2, 29), date(2025, 3, 1)) == 5


@pytest.mark.parametrize(
    ("given", "family", "out"),
    [
        ("Jane", "Smith", "J. S."),
        ("amy-jo", "o'neil", "A. J. O."),
        ("Leo", None, "L."),
        (None, None, ""),
    ],
)
def test_initials(given: str | None, family: str | None, out: str) -> None:
    assert initials(given, family) == out


def test_pseudonym_depends_on_key_recipient_path_and_value() -> None:
    base = pseudonym(b"k", "hub-a", "subject.nhs_number", "9997877896")
    assert base == pseudonym(b"k", "hub-a", "subject.nhs_number", "9997877896")
    assert base != pseudonym(b"j", "hub-a", "subject.nhs_number", "9997877896")
    assert base != pseudonym(b"k", "hub-b", "subject.nhs_number", "9997877896")
    assert base != pseudonym(b"k", "hub-a", "event.reference", "9997877896")
    assert base != pseudonym(b"k", "hub-a", "subject.nhs_number", "9991742182")
