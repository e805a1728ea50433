"""A macro's variable is followed to what it iterates: a field it cannot have fails to load.

Over ``event.subjects`` (however reached), a subject's fields are checked; over a list of
strings (``event.categories``, ``recipient.localities``) or numbers, any field is refused.
A name an inner macro binds again is that macro's, and what cannot be followed is left alone,
so no valid condition is refused; nor does following a variable narrow what a condition is
given (``_cel_reads`` decides that, and stays on the whole event where it cannot prove less).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from broker.policy._cel import compile_condition, probe
from broker.policy._cel_parse import parse
from broker.policy._cel_reads import SUBJECT_ATTRS
from tests.unit.policy.kit import default_agreements, default_restrictions, write_bundle

REPO = Path(__file__).resolve().parents[3]
SHARED_POLICIES = REPO.parent / "shared" / "examples" / "policies"
UNKNOWN = "unknown subject field"


def _refused(source: str) -> list[str]:
    cond, problems = compile_condition(source)
    assert cond is None, f"{source} loaded"
    return problems


def _loads(source: str) -> None:
    cond, problems = compile_condition(source)
    assert problems == [], source
    assert cond is not None
    assert probe(cond) is None, source


@pytest.mark.parametrize(
    "source",
    [
        "event.subjects.all(s, s.rol == 'child')",
        "event.subjects.exists(s, s.role == 'parent' && s.agee > 17)",
        "event.subjects.exists_one(s, s.rol == 'child')",
        "event.subjects.map(s, s.schol).size() > 0",
        "event.subjects.map(s, s.age > 1, s.schol).size() > 0",  # map's filtering form
        "event.subjects.map(s, s.agee > 1, s.role).size() > 0",
        "size(event.subjects.filter(s, s.agee < 5)) > 0",
    ],
)
def test_a_misspelt_field_of_each_macros_variable_over_subjects_is_refused(source: str) -> None:
    """Behind a need level no event has, so the probe never reaches it: the source check must."""
    problems = _refused(f"event.need_level > 4 && {source}")
    assert any(UNKNOWN in p for p in problems), problems


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("(event.subjects).exists(s, s.agee < 5)", "agee"),
        ("event.subjects.map(s, s).exists(t, t.rol == 'child')", "rol"),
        ("event.subjects.filter(s, s.age < 5).filter(t, t.rol == 'x').size() > 0", "rol"),
        ("[event.subjects[0]].exists(t, t.rol == 'child')", "rol"),
        ("(event.need_level > 3 ? event.subjects : []).exists(t, t.rol == 'x')", "rol"),
        ("event.subjects.exists(s, s['agee'] < 5)", "agee"),
        ("event.subjects.exists(s, has(s.schol))", "schol"),
    ],
)
def test_subjects_reached_other_ways_are_followed(source: str, field: str) -> None:
    problems = _refused(f"event.need_level > 4 && {source}")
    assert any(f"{UNKNOWN} {field!r}" in p for p in problems), problems


@pytest.mark.parametrize(
    "source",
    [
        "event.categories.exists(c, c.name == 'refuge')",
        "recipient.localities.exists(l, l.district == 'DY4')",
        "event.subjects.map(s, s.age).exists(a, a.years > 4)",
        "event.subjects.exists(s, s.age.years > 4)",
        "event.subjects.exists(s, s.role.name == 'child')",
        "event.subjects.map(s, s.role).all(r, r.value != 'x')",
    ],
)
def test_a_field_of_a_string_or_number_is_refused(source: str) -> None:
    problems = _refused(f"event.need_level > 4 && {source}")
    assert any("which has no fields" in p for p in problems), problems


def test_a_hidden_field_read_by_key_is_named_as_hidden() -> None:
    problems = _refused("event.subjects.exists(s, s['given_name'] == 'Amy')")
    assert any("'given_name', which a condition never sees" in p for p in problems)


@pytest.mark.parametrize(
    "source",
    [
        # The inner variable over subjects, the outer one read inside it.
        "event.subjects.exists(s, event.subjects.exists(t, t.age > s.agee))",
        "event.subjects.exists(s, event.subjects.exists(t, t.rol == s.role))",
        # Three deep, through a filter and a map.
        "event.subjects.exists(a, event.subjects.filter(b, b.age < 5)"
        ".map(c, c).exists(d, d.rol == a.role))",
        # Inside a macro over something else.
        "event.categories.exists(c, event.subjects.exists(s, s.rol == c))",
    ],
)
def test_nested_macros_are_followed(source: str) -> None:
    problems = _refused(source)
    assert any(UNKNOWN in p for p in problems), problems


def test_a_name_bound_again_by_an_inner_macro_is_the_inner_macros() -> None:
    # s is a map written in the condition inside, a subject outside it.
    _loads("event.subjects.exists(s, s.age < 5 && [{'a': 1}].exists(s, s.a == 1))")
    assert UNKNOWN in " ".join(
        _refused("event.subjects.exists(s, [{'a': 1}].exists(s, s.a == 1) && s.rol == 'x')")
    )
    # s is a subject inside, a category outside it, and the other way round.
    _loads("event.categories.exists(s, s == 'refuge' && event.subjects.exists(s, s.age < 5))")
    _loads("event.subjects.exists(s, event.categories.exists(s, s.size() > 3) && s.age < 5)")
    assert "of a string" in " ".join(
        _refused("event.subjects.exists(s, event.categories.exists(s, s.role == 'child'))")
    )


@pytest.mark.parametrize(
    "source",
    [
        "event.subjects.exists(s, s.role == 'child' && s.age < 5)",
        "event.subjects.all(s, has(s.school_urn) && s.has_nhs_number)",
        "event.subjects.exists_one(s, s.role == 'child')",
        "event.subjects.map(s, s.age).exists(a, a != null && a < 5)",
        "event.subjects.map(s, s.role == 'child', s.postcode_district).exists(d, d == 'DY4')",
        "event.subjects.filter(s, s.role == 'child').all(c, c.school_urn == recipient.urn)",
        "(event.subjects).exists(s, s['postcode_district'] in recipient.localities)",
        "event.subjects.map(s, s).exists(t, t.role.startsWith('c'))",
        "event.categories.exists(c, c.startsWith('domestic') && size(c) > 3)",
        "recipient.localities.exists(l, event.subjects.exists(s, s.postcode_district == l))",
        "event.subjects.exists(s, {'child': 1}[s.role] == 1)",
        "event.subjects.map(s, {'r': s.role}).exists(m, m.r == 'child')",
        "event.subjects.exists(s, dyn(s).role == 'child')",  # dyn: not followed
        "event.subjects.exists(s, s.role == 'child') // s.rol in a comment is not a read\n",
        "event.subjects.exists(s, 's.rol' != s.role)",
        # A list of maps written in the condition is not a list of subjects, whatever the
        # other branch of the choice is:
        "(event.need_level > 3 ? event.subjects : [{'role': 'none', 'flagged': true}])"
        ".exists(s, has(s.flagged))",
    ],
)
def test_a_valid_macro_condition_still_loads(source: str) -> None:
    _loads(source)


def test_a_condition_outside_the_grammar_followed_is_left_to_the_other_checks() -> None:
    """Message construction compiles, and is not followed: parse says so, refusing nothing."""
    assert parse("google.protobuf.Int64Value{value: 1} == 1") is None
    assert parse("event.subjects.exists(s, s.rol == 'child'") is None  # unbalanced
    assert parse("event.subjects.exists(s, s.role == 'child')") is not None


@pytest.mark.parametrize(
    "source",
    [
        "(event.subjects).exists(s, s.age < 5)",
        "event.subjects.map(s, s).exists(t, t.age < 5)",
        "[event.subjects[0]].exists(t, t.age < 5)",
        "event.subjects.exists(s, s.age < 5 && [{'a': 1}].exists(s, s.a == 1))",
    ],
)
def test_a_followed_condition_whose_reads_are_not_proved_is_given_whole_subjects(
    source: str,
) -> None:
    """Following a variable to check its fields is not proof of what it observes."""
    cond, problems = compile_condition(source)
    assert cond is not None, problems
    assert cond.view.subject == SUBJECT_ATTRS


def _load_problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def test_a_clause_naming_a_misspelt_field_in_a_macro_fails_to_load_naming_where(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[1]["clauses"][0]["when"] = (
        "event.child_present && event.subjects.map(s, s).exists(t, t.schol == recipient.urn)"
    )
    (problem,) = _load_problems(write_bundle(tmp_path / "b", agreements=agreements))
    agreement, clause = agreements[1]["id"], agreements[1]["clauses"][0]["id"]
    assert problem.startswith("agreements/encompass.yaml:")
    assert "clauses[0].when" in problem
    assert f"agreement {agreement!r}, clause {clause!r}" in problem
    assert "unknown subject field 'schol'" in problem


def test_a_restriction_naming_a_field_of_a_category_fails_to_load_naming_it(
    tmp_path: Path,
) -> None:
    restrictions = default_restrictions()
    restrictions[0]["when"] = "event.categories.exists(c, c.name == 'refuge')"
    (problem,) = _load_problems(write_bundle(tmp_path / "b", restrictions=restrictions))
    assert problem.startswith("restrictions.yaml:")
    assert f"restriction {restrictions[0]['id']!r}" in problem
    assert "field 'name' of a string" in problem


def test_the_project_bundle_loads() -> None:
    load_bundle(REPO / "policies")


@pytest.mark.skipif(not SHARED_POLICIES.is_dir(), reason="../shared is not beside this clone")
def test_the_brief_example_bundle_loads() -> None:
    load_bundle(SHARED_POLICIES)
