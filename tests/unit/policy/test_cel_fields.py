"""Fields below the first level (a subject's, safeguarding's) are checked when a bundle loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from broker.policy._cel import (
    RECIPIENT_ATTRS,
    compile_condition,
    probe,
    probe_activation,
)
from broker.policy._cel_reads import EVENT_ATTRS, SAFEGUARDING_ATTRS, SUBJECT_ATTRS
from tests.unit.policy.kit import default_agreements, default_restrictions, write_bundle


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("event.subjects.exists(s, s.rol == 'child')", "unknown subject field 'rol'"),
        ("event.subjects.all(s, has(s.agee))", "unknown subject field 'agee'"),
        ("event.subjects[0].rol == 'child'", "unknown subject field 'rol'"),
        ("event.subjects.filter(s, s.age < 5)[0].rol == 'x'", "unknown subject field 'rol'"),
        ("event.subjects.filter(s, s.age < 5).exists(t, t.rol == 'x')", "subject field 'rol'"),
        ("event.subjects.exists(s, s.role == 'child' && event.subjects.exists(t, t.agee > s.age))",
         "unknown subject field 'agee'"),
        ("event.subjects.exists(s, [{'a': 1}].exists(s, s.a == 1) && s.rol == 'x')",
         "unknown subject field 'rol'"),
        ("event.safeguarding.concen", "unknown field event.safeguarding.concen"),
        ("event.need_level > 3 || !event.safeguarding.concen", "event.safeguarding.concen"),
        # Held by the event, deliberately hidden from conditions: named as such.
        ("event.subjects.exists(s, s.postcode == 'DY4 7AA')", "it sees postcode_district"),
        ("event.subjects.exists(s, s.nhs_number != null)", "it sees has_nhs_number"),
        ("event.subjects.exists(s, s.dob != null)", "it sees age"),
        ("event.subjects.exists(s, s.given_name == 'x')", "'given_name', which a condition never"),
    ],
)  # fmt: skip
def test_a_misspelt_or_hidden_subject_or_safeguarding_field_is_refused(
    source: str, fragment: str
) -> None:
    cond, problems = compile_condition(source)
    assert cond is None
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    "source",
    [
        "event.subjects.exists(s, s.role == 'child' && s.age < 5)",
        "event.subjects.all(x, has(x.school_urn) && x.has_nhs_number)",
        "event.subjects[0].postcode_district == 'DY4'",
        "event.subjects.filter(s, s.age < 5).exists(t, t.role == 'child')",
        "event.subjects.exists(s, s.role.startsWith('c'))",  # a method, not a field
        "event.subjects.exists(s, 's.rol' == s.role)",  # a string is not a read
        # The same name bound over something else selects that thing's fields.
        "event.subjects.exists(s, s.role == 'child' && [{'a': 1}].exists(s, s.a == 1))",
        "event.subjects.exists(s, s.age < 5) && event.categories.exists(s, s.size() > 1)",
        "event.safeguarding.concern && size(event.safeguarding.justification) > 0",
    ],
)
def test_known_subject_and_safeguarding_fields_still_load(source: str) -> None:
    cond, problems = compile_condition(source)
    assert problems == []
    assert cond is not None
    assert probe(cond) is None


def test_the_probe_event_holds_every_field_a_condition_may_read() -> None:
    """Else the probe would refuse a correct read as an unknown field."""
    event, recipient = probe_activation()
    assert set(event) == EVENT_ATTRS
    assert set(event["safeguarding"]) == SAFEGUARDING_ATTRS
    assert all(set(s) == SUBJECT_ATTRS for s in event["subjects"])
    assert set(recipient) == RECIPIENT_ATTRS


@pytest.mark.parametrize(
    "source",
    [
        # Past what the source checks follow (dyn, a map written in the condition).
        "dyn(event.subjects[0])['rol'] == 'child'",
        "event.subjects.map(s, {'p': s}).exists(t, t.p.rol == 'child')",
        "event.child_present && event.subjects.exists(s, dyn(s)['agee'] > 1)",
    ],
)
def test_the_probe_reports_a_field_the_code_names_that_no_event_has(source: str) -> None:
    cond, problems = compile_condition(source)
    assert cond is not None, problems
    assert (found := probe(cond)) is not None
    assert "unknown field" in found


def test_the_probe_does_not_refuse_a_key_that_comes_from_data() -> None:
    """A real recipient may be in the map; the fictional one is not."""
    cond, _ = compile_condition("{'cog-tipton': 1}[recipient.id] == 1")
    assert cond is not None
    assert probe(cond) is None


def _problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def test_a_clause_selecting_a_misspelt_subject_field_fails_to_load(tmp_path: Path) -> None:
    """It would otherwise be condition-false for every event."""
    agreements = default_agreements()
    agreements[1]["clauses"][0]["when"] = (
        "event.child_present && event.subjects.exists(s, s.rol == 'child')"
    )
    (problem,) = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert problem.startswith("agreements/encompass.yaml:")
    assert "clauses[0].when" in problem
    assert "'rol'" in problem


def test_a_restriction_selecting_a_misspelt_safeguarding_field_fails_to_load(
    tmp_path: Path,
) -> None:
    """A withhold-all restriction that cannot be worked out would suppress everything."""
    restrictions = default_restrictions()
    restrictions[0]["when"] = "event.safeguarding.concen"
    (problem,) = _problems(write_bundle(tmp_path / "b", restrictions=restrictions))
    assert problem.startswith("restrictions.yaml:")
    assert "restrictions[0].when" in problem
    assert "event.safeguarding.concen" in problem
