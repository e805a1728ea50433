"""A condition comparing a fixed-list field with a string it never holds fails to load.

``recipient.id == 'cog-tiptn'`` is well typed and false for every event: a restriction written
so never withholds anything, and a clause never shares. The party ids (the bundle's), the
party kinds, statuses, event types and people's roles are known, so a string outside them
is refused, naming the file and line, the comparison, the field and the string, with the
value most likely meant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from tests.unit.policy.kit import default_agreements, default_restrictions, write_bundle


def _restricted(tmp_path: Path, when: str) -> list[str]:
    restrictions = default_restrictions()
    restrictions.append({"id": "lock", "when": when, "withhold": "all"})
    root = write_bundle(tmp_path / "b", restrictions=restrictions)
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def _loads(tmp_path: Path, when: str) -> None:
    restrictions = default_restrictions()
    restrictions.append({"id": "lock", "when": when, "withhold": "all"})
    load_bundle(write_bundle(tmp_path / "b", restrictions=restrictions))


def test_a_misspelt_party_and_kind_in_a_restriction_are_refused_with_file_line_and_guess(
    tmp_path: Path,
) -> None:
    problems = _restricted(tmp_path, "recipient.id == 'hub-tiptn' && recipient.kind == 'hubs'")
    assert problems == [
        "restrictions.yaml:14: restrictions[2].when: restriction 'lock': CEL: recipient.id =="
        " 'hub-tiptn' is false for every event: recipient.id is a party, and there is no"
        " party 'hub-tiptn' in the bundle; did you mean 'hub-tipton'?",
        "restrictions.yaml:14: restrictions[2].when: restriction 'lock': CEL: recipient.kind =="
        " 'hubs' is false for every event: recipient.kind is a party kind, and there is no"
        " party kind 'hubs'; did you mean 'hub'?",
    ]


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ("event.sender == 'wmpp'", "event.sender is a party, and there is no party 'wmpp'"),
        (
            "event.type != 'education.welfare_concen'",
            "is true for every event: event.type is an event type, and there is no event type"
            " 'education.welfare_concen'; did you mean 'education.welfare_concern'?",
        ),
        (
            "event.subjects.exists(s, s.role == 'Child')",
            "s.role is a role, and there is no role 'Child'; did you mean 'child'?",
        ),
        ("event.subjects.exists(s, s['role'] == 'kid')", "no role 'kid' (known: carer, child,"),
        ("event.subjects[0].role == 'childd'", "did you mean 'child'?"),
        ("'hub-tiptn' == recipient.id", "is false for every event: recipient.id is a party"),
        (
            "recipient.kind in ['hub', 'scool']",
            "recipient.kind in ['hub', 'scool'] never matches 'scool': recipient.kind is a party"
            " kind, and there is no party kind 'scool'; did you mean 'school'?",
        ),
        ("recipient.status == 'suspend'", "did you mean 'suspended'?"),
    ],
)
def test_a_string_a_fixed_list_field_never_holds_is_refused(
    tmp_path: Path, when: str, says: str
) -> None:
    (problem,) = _restricted(tmp_path, when)
    assert problem.startswith("restrictions.yaml:14: restrictions[2].when: restriction 'lock'")
    assert says in problem


def test_a_misspelt_value_in_a_clause_condition_is_refused_naming_the_clause(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["when"] = "recipient.id != 'cordd'"
    with pytest.raises(BundleInvalid) as info:
        load_bundle(write_bundle(tmp_path / "b", agreements=agreements))
    (problem,) = info.value.problems
    assert "clauses[0].when: agreement 'early-help', clause 'police-to-coord'" in problem
    assert "no party 'cordd' in the bundle; did you mean 'coord'?" in problem


@pytest.mark.parametrize(
    "when",
    [
        "recipient.id == 'hub-tipton' && recipient.kind == 'hub'",
        "event.sender in ['wmp', 'swbh'] && event.type != 'education.welfare_concern'",
        "event.subjects.exists(s, s.role == 'child') && recipient.status == 'active'",
        "recipient.id.startsWith('hub-') && recipient.name == 'Tipton'",  # not a fixed list
        "recipient.kind == null || recipient.id in []",
    ],
)
def test_values_the_fields_hold_still_load(tmp_path: Path, when: str) -> None:
    _loads(tmp_path, when)
