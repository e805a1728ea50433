"""``school:of-child``: a school hears only about its own pupils, never about a pupil of another
school, whatever the role the event gives them (docs/policy-language.md §3)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from broker.policy import Policy, load_bundle, redact
from tests.unit.policy.kit import (
    AT,
    ENCOMPASS,
    agreement,
    by_recipient,
    event,
    load,
    subject,
)

REPO = Path(__file__).resolve().parents[3]
SIBLING_NHS = "9994410008"


def _encompass(root: Path, roles: list[str] | None) -> Policy:
    """The kit's bundle with only its Encompass clause, sharing ``roles`` (None: left out)."""
    clause: dict[str, Any] = copy.deepcopy(ENCOMPASS)
    if roles is None:
        del clause["subjects"]
    else:
        clause["subjects"] = roles
    return load(root, agreements=[agreement("encompass", [clause])])


def _family(sibling_urn: str | None) -> list[dict[str, Any]]:
    """Ruby (child, school A), her brother (a sibling, at ``sibling_urn``) and their mother."""
    return [
        subject("child", given_name="Ruby", school_urn="100001"),
        subject("sibling", nhs_number=SIBLING_NHS, given_name="Jack", dob="2013-09-02",
                school_urn=sibling_urn),
        subject("parent"),
    ]  # fmt: skip


def test_a_sibling_at_another_school_is_not_sent_to_the_childs_school(tmp_path: Path) -> None:
    """The reviewer's Tipton case: subjects [child, sibling], Jack at school B."""
    policy = _encompass(tmp_path, ["child", "sibling"])
    ev = event(subjects=_family("100002"))
    d = by_recipient(policy.decide(ev, [], at=AT))
    school = d["school-a"]
    assert school.subjects == (0,)
    assert school.subject_roles == {"child": 1}
    view = redact(ev, school)
    assert [s["given_name"] for s in view["subjects"]] == ["Ruby"]
    # Routing is by child subjects: a sibling's URN reaches no school.
    assert "school-b" not in d


@pytest.mark.parametrize("urn", ["100001", None])
def test_a_sibling_at_the_same_school_or_at_none_is_shared_when_the_clause_names_siblings(
    urn: str | None, tmp_path: Path
) -> None:
    policy = _encompass(tmp_path, ["child", "sibling"])
    ev = event(subjects=_family(urn))
    school = by_recipient(policy.decide(ev, [], at=AT))["school-a"]
    assert school.subjects == (0, 1)
    assert school.subject_roles == {"child": 1, "sibling": 1}


def test_without_subjects_the_school_gets_the_adults_but_never_another_schools_pupil(
    tmp_path: Path,
) -> None:
    """The default is everyone, as the brief says, less anyone whose URN names another school."""
    policy = _encompass(tmp_path / "none", None)
    ev = event(subjects=[*_family("100002"), subject("other_adult", nhs_number="9994410016")])
    school = by_recipient(policy.decide(ev, [], at=AT))["school-a"]
    assert school.subjects == (0, 2, 3)
    assert school.subject_roles == {"child": 1, "parent": 1, "other_adult": 1}
    assert len(redact(ev, school)["subjects"]) == 3


def test_two_children_at_two_schools_with_a_parent_each_school_gets_its_child_and_the_parent(
    tmp_path: Path,
) -> None:
    policy = _encompass(tmp_path, ["child", "parent"])
    ev = event(
        subjects=[
            subject("child", school_urn="100001"),
            subject("child", nhs_number=SIBLING_NHS, school_urn="100002"),
            subject("parent"),
        ]
    )
    d = by_recipient(policy.decide(ev, [], at=AT))
    assert d["school-a"].subjects == (0, 2)
    assert d["school-b"].subjects == (1, 2)


def test_a_school_of_child_clause_without_subjects_is_warned_about(tmp_path: Path) -> None:
    [warning] = _encompass(tmp_path / "none", None).warnings()
    assert "'encompass'" in warning
    assert "subjects" in warning
    assert _encompass(tmp_path / "child", ["child"]).warnings() == []


def test_the_project_bundle_has_no_warnings_and_the_examples_only_their_missing_article10(
    tmp_path: Path,
) -> None:
    """The small example and the kit send police events to hubs on article6 alone: rightly
    warned of (test_basis_warnings), and nothing else."""
    assert load_bundle(REPO / "policies").warnings() == []
    examples = REPO.parent / "shared" / "examples" / "policies"
    if examples.is_dir():
        [warning] = load_bundle(examples).warnings()
        assert "'contacts-to-hub': shares police events" in warning
    [warning] = load(tmp_path / "kit").warnings()
    assert "'to-hub': shares police events (police.domestic_incident) without article10" in warning
