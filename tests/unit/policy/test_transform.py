"""Transforms: age bands at the decision date, initials, pseudonyms."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from broker.policy._model import TRANSFORM_TARGETS, TRANSFORMS
from broker.policy._transform import age_band, age_in_years, initials, pseudonym
from tests.unit.policy.kit import default_agreements, write_bundle


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


DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy-language.md"


def _documented_targets() -> dict[str, set[str]]:
    """Transform → the fields the docs' Transforms table says it applies to."""
    text = DOCS.read_text()
    table = text[text.index("### Transforms") : text.index("## 4. Restrictions")]
    out: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 3 and (name := cells[0].strip("`")) in TRANSFORMS:
            out[name] = set(re.findall(r"`((?:subject|event)\.\w+)`", cells[1]))
    return out


def test_the_docs_name_exactly_the_fields_each_transform_applies_to() -> None:
    """What the docs promise is what a bundle load accepts (pseudonym is not 'any field')."""
    assert _documented_targets() == {k: set(v) for k, v in TRANSFORM_TARGETS.items()}


def test_pseudonymising_a_field_recipients_read_as_a_value_is_refused_naming_the_choices(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["transform"] = {"event.need_level": "pseudonym"}
    with pytest.raises(BundleInvalid) as info:
        load_bundle(write_bundle(tmp_path / "b", agreements=agreements))
    (problem,) = info.value.problems
    assert "transform 'pseudonym' does not apply to 'event.need_level'" in problem
    assert "(it applies to: event.location, event.reference, subject.address" in problem
