"""Subject keys (broker.linkage): one person is one key however their name is typed; two
people of one name and birth date in different places are two; a name with no letter links
no one."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from broker.events import ConsentSubject, Subject
from broker.linkage import Linker, Unlinkable

LINKER = Linker(b"k" * 32)
SIAN = "Siân"


def _child(**fields: Any) -> Subject:
    base = {"role": "child", "given_name": SIAN, "family_name": "Hughes", "dob": "2016-03-02",
            "postcode": "DY4 7AA"}  # fmt: skip
    return Subject.model_validate({**base, **fields}, context={"now": datetime.now(UTC)})


@pytest.mark.parametrize("other", ["NFD", "Sian"])
def test_a_name_with_or_without_its_accent_is_one_subject_and_one_consent_match(
    other: str,
) -> None:
    """Composed and decomposed look the same on screen, and many systems store no accent:
    a withdrawal typed one way reaches events typed the other."""
    composed = unicodedata.normalize("NFC", SIAN)
    spelt = unicodedata.normalize("NFD", SIAN) if other == "NFD" else other
    assert composed != spelt
    a, b = _child(given_name=composed), _child(given_name=spelt)
    assert LINKER.subject_key(a) == LINKER.subject_key(b)
    for named, event in ((spelt, a), (composed, b)):
        consent = ConsentSubject(given_name=named, family_name="Hughes", dob=a.dob)
        assert consent.matches(event)
        assert set(LINKER.consent_keys(consent)) & set(LINKER.lookup_keys(event))


def test_two_children_of_one_name_and_birth_date_in_different_places_are_two_subjects() -> None:
    """BRIEF §3: the demographic key takes the postcode, so their audit entries stay apart."""
    tipton, wolverhampton = _child(), _child(postcode="WV10 6QA")
    assert LINKER.subject_key(tipton) != LINKER.subject_key(wolverhampton)
    assert LINKER.subject_key(_child(postcode="dy47aa")) == LINKER.subject_key(tipton)


def test_a_consent_given_without_a_postcode_is_still_looked_up_for_a_child_with_one() -> None:
    child = _child()
    consent = ConsentSubject(given_name=SIAN, family_name="Hughes", dob=child.dob)
    assert LINKER.subject_key(child) not in LINKER.consent_keys(consent)
    assert set(LINKER.consent_keys(consent)) & set(LINKER.lookup_keys(child))
    assert consent.matches(child)
    elsewhere = ConsentSubject(given_name=SIAN, family_name="Hughes", dob=child.dob,
                               postcode="WV10 6QA")  # fmt: skip
    assert not elsewhere.matches(child)  # found under the shared key, refused by the match


@pytest.mark.parametrize("placeholder", ["-", "?", " . ", "1", " 2 "])
def test_a_name_with_no_letter_links_no_one(placeholder: str) -> None:
    """Two children recorded as "-" with one birth date are not one child."""
    child = _child(given_name=placeholder)
    with pytest.raises(Unlinkable):
        LINKER.subject_key(child)
    incoming = {"now": datetime.now(UTC)}
    named = {"given_name": placeholder, "family_name": "Hughes", "dob": child.dob}
    with pytest.raises(ValidationError, match="a name needs at least one letter"):
        ConsentSubject.model_validate(named, context=incoming)
    any_name = ConsentSubject(given_name="Sian", family_name="Hughes", dob=child.dob)
    assert not any_name.matches(child)
    # The NHS number identifies: a placeholder name beside it is no reason to refuse.
    ConsentSubject.model_validate({**named, "nhs_number": "9434765919"}, context=incoming)
    # And a record filed before this rule (read back without a context) still loads: a
    # withdrawal dropped at a restart would put its consent back in force.
    assert not ConsentSubject.model_validate(named).matches(child)


def test_consent_filed_under_an_accented_name_before_accents_were_dropped_is_still_found() -> None:
    """A withdrawal filed as "Siân" by an older Accord (its key kept the accent) must still
    reach events naming "Siân" or "Sian", or sharing would resume after the upgrade."""
    old_key = "d:" + LINKER._mac("demo", f"hughes|siân|{_child().dob}")  # as filed then
    assert old_key in LINKER.lookup_keys(_child())
    assert old_key in LINKER.lookup_keys(_child(postcode=None))
    assert old_key not in LINKER.lookup_keys(_child(given_name="Sian"))  # never filed so
    consent = ConsentSubject(given_name=SIAN, family_name="Hughes", dob=_child().dob)
    assert old_key in LINKER.consent_keys(consent)  # so a new withdrawal recalls old shares


def test_twins_named_by_number_are_two_subjects_and_neither_takes_the_others_consent() -> None:
    """A newborn's placeholder names differ only by a digit: "Twin 1" and "Twin 2", one
    family name, one birth date, one address. When only letters counted they were one child,
    and one twin's consent (or its withdrawal) governed the other's records."""
    one, two = _child(given_name="Twin 1"), _child(given_name="Twin 2")
    assert LINKER.subject_key(one) != LINKER.subject_key(two)
    assert LINKER.subject_key(one) == LINKER.subject_key(_child(given_name="twin-1"))
    consent = ConsentSubject(given_name="Twin 1", family_name="Hughes", dob=one.dob)
    assert consent.matches(one)
    assert not consent.matches(two)


def test_consent_filed_under_a_numbered_name_before_digits_counted_is_still_found() -> None:
    """Filed as "Twin 1" by an older Accord, its key had "twin": still looked up, and the
    decision's name check keeps the other twin's records out."""
    old_key = "d:" + LINKER._mac("demo", f"hughes|twin|{_child().dob}")  # as filed then
    one, two = _child(given_name="Twin 1"), _child(given_name="Twin 2")
    assert old_key in LINKER.lookup_keys(one)
    assert old_key in LINKER.lookup_keys(two)
    assert old_key not in (LINKER.subject_key(one), LINKER.subject_key(two))
