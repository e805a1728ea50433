"""redact(): each recipient's view holds exactly what its decision allows, transformed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from broker.errors import ConfigError, PolicyError
from broker.policy import Policy, redact
from tests.unit.policy.kit import AT, ENCOMPASS, agreement, by_recipient, consent, event, load

KEY = b"k" * 32


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load(tmp_path / "bundle")


def test_always_travelling_fields_and_only_shared_ones(policy: Policy) -> None:
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))["school-a"]
    view = redact(ev, d, pseudonym_key=KEY)
    assert view["event_id"] == str(ev.event_id)
    assert view["type"] == "police.domestic_incident"
    assert view["sender"] == "wmp"
    assert view["occurred_at"] == "2026-11-21T22:40:00Z"
    assert view["reference"] == "WMP/26/112233"
    assert "summary" not in view
    assert "need_level" not in view
    assert view["subjects"] == [{"given_name": "Amy", "family_name": "Hollis", "dob": "2019-03-02"}]
    assert view["sharing"]["clause_ids"] == ["encompass"]
    assert view["sharing"]["lawful_basis"] == {
        "article6": "legal_obligation",
        "article10": "safeguarding_children",
    }


def test_transformed_fields_travel_under_the_transform_name(policy: Policy) -> None:
    ev = event()
    d = by_recipient(policy.decide(ev, [consent()], at=AT))["hub-tipton"]
    view = redact(ev, d, pseudonym_key=KEY)
    child, parent = view["subjects"]
    assert child == {
        "given_name": "Amy",
        "family_name": "Hollis",
        "age_band": "5-10",
        "postcode_district": "DY4",
    }
    assert parent["age_band"] == "18+"
    assert "dob" not in child
    assert "postcode" not in child


def test_withheld_fields_are_absent_from_the_view(policy: Policy) -> None:
    ev = event(categories=["refuge"])
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    view = redact(ev, d, pseudonym_key=KEY)
    assert "location" not in view
    assert all("address" not in s and "postcode" not in s for s in view["subjects"])


def _pseudonymising(tmp_path: Path) -> Policy:
    clause = copy.deepcopy(ENCOMPASS)
    clause.update(
        to=["school:of-child", "coord"],
        share=["subject.name", "subject.nhs_number", "subject.dob", "event.reference"],
        transform={
            "subject.name": "initials",
            "subject.nhs_number": "pseudonym",
            "subject.dob": "year_of_birth",
            "event.reference": "pseudonym",
        },
    )
    return load(tmp_path / "p", agreements=[agreement("a", [clause])])


def test_initials_year_of_birth_and_pseudonyms(tmp_path: Path) -> None:
    policy = _pseudonymising(tmp_path)
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))
    school = redact(ev, d["school-a"], pseudonym_key=KEY)
    coord = redact(ev, d["coord"], pseudonym_key=KEY)
    s = school["subjects"][0]
    assert s["initials"] == "A. H."
    assert s["year_of_birth"] == 2019
    assert "reference" not in school
    assert len(s["nhs_number_pseudonym"]) == 32
    assert "9997877896" not in str(school)
    # Stable for one recipient, different for another, different under another key.
    assert redact(ev, d["school-a"], pseudonym_key=KEY)["subjects"][0] == s
    assert coord["subjects"][0]["nhs_number_pseudonym"] != s["nhs_number_pseudonym"]
    other_key = redact(ev, d["school-a"], pseudonym_key=b"x" * 32)
    assert other_key["subjects"][0]["nhs_number_pseudonym"] != s["nhs_number_pseudonym"]
    assert school["reference_pseudonym"] != coord["reference_pseudonym"]


def test_a_pseudonym_needs_a_key(tmp_path: Path) -> None:
    policy = _pseudonymising(tmp_path)
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))["school-a"]
    with pytest.raises(ConfigError, match="pseudonym key"):
        redact(ev, d)


def test_a_refusal_has_no_view(policy: Policy) -> None:
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))["hub-tipton"]
    with pytest.raises(PolicyError, match="nothing is shared"):
        redact(ev, d)


def test_a_decision_for_another_event_is_refused(policy: Policy) -> None:
    d = by_recipient(policy.decide(event(), [], at=AT))["coord"]
    other = event(event_id="5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0009")
    with pytest.raises(PolicyError, match="different event"):
        redact(other, d)


def test_each_person_gets_only_the_fields_of_the_clauses_that_cover_them(tmp_path: Path) -> None:
    """Minimum necessary: clause A's child fields never reach clause B's parent."""
    child_clause = dict(copy.deepcopy(ENCOMPASS), id="child-full", to=["coord"],
                        share=["subject.name", "subject.nhs_number", "subject.dob"])  # fmt: skip
    parent_clause = dict(copy.deepcopy(ENCOMPASS), id="parent-min", to=["coord"],
                         subjects=["parent"], share=["subject.name", "subject.dob"],
                         transform={"subject.dob": "year_of_birth"})  # fmt: skip
    policy = load(tmp_path / "p", agreements=[agreement("a", [child_clause, parent_clause])])
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    assert set(d.clause_ids) == {"child-full", "parent-min"}
    assert set(d.fields_shared) == {"subject.name", "subject.nhs_number", "subject.dob"}
    child, parent = redact(ev, d, pseudonym_key=KEY)["subjects"]
    assert child["nhs_number"] == "9997877896"
    assert child["dob"] == "2019-03-02"
    assert "nhs_number" not in parent
    assert "dob" not in parent
    assert parent["year_of_birth"] == 1990
    assert parent["given_name"] == "Dean"


def test_clauses_covering_the_same_people_combine_without_per_person_scopes(
    tmp_path: Path,
) -> None:
    one = dict(copy.deepcopy(ENCOMPASS), id="one", to=["coord"], share=["subject.name"])
    two = dict(copy.deepcopy(ENCOMPASS), id="two", to=["coord"], share=["subject.dob"])
    policy = load(tmp_path / "p", agreements=[agreement("a", [one, two])])
    d = by_recipient(policy.decide(event(), [], at=AT))["coord"]
    assert d.subject_scopes == ()
    assert set(d.fields_shared) == {"subject.name", "subject.dob"}
