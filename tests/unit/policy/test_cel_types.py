"""A condition that mixes types CEL does not combine, or calls with invalid literals, fails to load.

CEL converts nothing: ``recipient.urn == 146201`` is false for every event (a restriction
then never applies, and shares what it should withhold), and ``event.need_level >= '2'``
fails for every event. Both are refused at load, naming the comparison, whether or not the
load-time probe would reach them; what is well typed, or fails only on a null, still loads.
The tables that decide are held to the binding itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import cel
import pytest

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from broker.policy._cel import compile_condition, probe
from broker.policy._cel_ops import ListOf, operation
from broker.policy._cel_parse import Lit, Op
from tests.unit.policy.kit import default_agreements, default_restrictions, write_bundle


def _refused(source: str) -> str:
    cond, problems = compile_condition(source)
    assert cond is None, f"{source} loaded"
    (problem,) = problems
    return problem


def _loads(source: str) -> None:
    cond, problems = compile_condition(source)
    assert problems == [], source
    assert cond is not None
    assert probe(cond) is None, source


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("recipient.urn == 146201", "compares a string with an integer, which are never equal"),
        ("recipient.urn != 146201", "so it is true for every event"),
        ("event.child_present == 'true'", "compares a boolean with a string"),
        ("event.need_level >= '2'", "orders an integer against a string"),
        ("event.subjects.exists(s, s.age < '5')", "orders an integer against a string"),
        ("event.occurred_at > '2026-01-01'", "orders a timestamp against a string"),
        ("event.need_level in ['1', '2']", "looks for an integer in a list of strings"),
        ("event.categories.exists(c, c == 1)", "compares a string with an integer"),
        ("recipient.urn == event.need_level", "compares a string with an integer"),
        ("event.safeguarding == true", "compares safeguarding with a boolean"),
        ("'dv' in event.summary", "which is not a list"),
        ("event.need_level + 1.0 > 2.0", "applies + to an integer and a decimal number"),
        ("event.subjects.map(s, s.age).exists(a, a == '3')", "compares an integer with a string"),
        ("event.subjects.filter(s, s.age < 5).size() >= '1'", "orders an integer against"),
        ("!event.need_level", "is an integer, not true or false"),
    ],
)
def test_an_operation_on_types_cel_does_not_combine_is_refused_naming_it(
    source: str, says: str
) -> None:
    """Behind a need level no event has, so no probe reaches it: the kinds decide."""
    problem = _refused(f"event.need_level > 4 && ({source})")
    assert says in problem, problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("source", "shown", "hint"),
    [
        ("recipient.urn == 146201", "recipient.urn == 146201", "write '146201'"),
        ("event.child_present == 'true'", "event.child_present == 'true'", "write true"),
        ("event.need_level >= '2'", "event.need_level >= '2'", "write 2"),
        ("event.occurred_at > '2026-01-01'", "event.occurred_at > '2026-01-01'", "timestamp("),
    ],
)
def test_the_refusal_quotes_the_comparison_and_says_how_to_write_the_literal(
    source: str, shown: str, hint: str
) -> None:
    problem = _refused(source)
    assert f"CEL: {shown} " in problem
    assert hint in problem


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("event.occurred_at > timestamp('2026-13-01T00:00:00Z')", "not a valid timestamp"),
        ("event.occurred_at > timestamp('2026-01-01')", "not a valid timestamp"),
        ("event.occurred_at - timestamp('2026-01-01T00:00:00Z') < duration('1x')", "duration"),
        ("event.occurred_at - timestamp('2026-01-01T00:00:00Z') < duration('7d')", "duration"),
        ("event.subjects.exists(s, s.postcode_district.matches('['))", "regular expression"),
        ("event.summary.matches('(')", "regular expression"),
        ("event.summary.contains(1)", "fails for every event"),
    ],
)
def test_a_call_of_literals_that_fails_whatever_the_event_is_refused(
    source: str, says: str
) -> None:
    problem = _refused(f"event.need_level > 4 && {source}")
    assert says in problem, problem


@pytest.mark.parametrize(
    "source",
    [
        "recipient.urn == '146201'",
        "event.child_present == true",
        "event.need_level >= 2 && event.need_level <= 3",
        "event.need_level == 2.0 || event.need_level > 2u",  # numbers compare across kinds
        "event.subjects.exists(s, s.age < 5)",  # fails only when an age is null
        "event.subjects.exists(s, s.age == null)",
        "recipient.urn != null && recipient.urn == '100001'",
        "event.service.startsWith('sexual')",  # fails only when the service is null
        "event.occurred_at > timestamp('2026-01-01T00:00:00Z')",
        "event.occurred_at - timestamp('2026-01-01T00:00:00Z') < duration('24h')",
        "event.subjects.exists(s, s.postcode_district.matches('^ZZ\\\\d'))",
        "event.subjects.exists(s, s.postcode_district.matches(r'^ZZ\\d'))",
        "event.categories == [] || 'refuge' in event.categories",
        "int('2') == event.need_level",
        "dyn(event.need_level) == '2' || event.child_present",  # dyn: said on purpose
        "{'hub': 2, 'school': 'x'}[recipient.kind] == 2",  # kinds from data: not followed
        "recipient.localities.exists(l, l == 'DY4')",
        "size(event.subjects) > 1 ? event.need_level > 2 : event.child_present",
    ],
)
def test_a_well_typed_condition_still_loads(source: str) -> None:
    _loads(source)


def test_a_type_error_no_well_formed_event_escapes_is_refused_by_the_probe() -> None:
    """Through a map written in the condition, whose kinds are not followed."""
    cond, problems = compile_condition("{'n': event.need_level}['n'] >= '2'")
    assert cond is not None, problems
    assert probe(cond) == (
        "CEL fails on every well-formed event (operands of types it does not combine)"
    )


def test_a_type_error_some_well_formed_events_escape_is_left_to_run_time() -> None:
    """It fails on the first probe but not when the child is absent: that may be the data."""
    cond, problems = compile_condition("!event.child_present || {'n': 1}['n'] >= '2'")
    assert cond is not None, problems
    assert probe(cond) is None


def _load_problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def test_a_restriction_comparing_a_urn_with_a_number_fails_to_load_naming_where(
    tmp_path: Path,
) -> None:
    restrictions = default_restrictions()
    restrictions[1]["when"] = "recipient.urn == 100001"
    (problem,) = _load_problems(write_bundle(tmp_path / "b", restrictions=restrictions))
    assert problem.startswith("restrictions.yaml:")
    assert f"restriction {restrictions[1]['id']!r}" in problem
    assert "recipient.urn == 100001 compares a string with an integer" in problem


def test_a_clause_ordering_a_need_level_against_text_fails_to_load_naming_where(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["when"] = "event.need_level >= '2'"
    (problem,) = _load_problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert ".yaml:" in problem
    assert "clauses[0].when" in problem
    assert "event.need_level >= '2' orders an integer against a string" in problem


# One value of each kind, so that values of kinds CEL equates are equal.
_SAMPLES = {
    "int": "2", "uint": "2u", "double": "2.0", "string": "'2'", "bytes": "b'2'",
    "bool": "true", "timestamp": "timestamp('2026-01-01T00:00:00Z')",
    "duration": "duration('2s')",
}  # fmt: skip
_PYTHON = {
    "int": int, "uint": int, "double": float, "string": str, "bytes": bytes, "bool": bool,
    "timestamp": datetime, "duration": timedelta,
}  # fmt: skip
_PAIRS = [(a, b) for a in _SAMPLES for b in _SAMPLES]


def _run(source: str) -> tuple[object, bool]:
    try:
        return cel.compile(source).execute({}), False
    except Exception:  # noqa: BLE001  # any failure of the binding
        return None, True


def _op(op: str, *kinds: str) -> tuple[object, str | None]:
    node = Op(op, tuple(Lit(k, None, _SAMPLES[k]) for k in kinds))
    return operation(node, list(kinds))


@pytest.mark.parametrize(("left", "right"), _PAIRS)
def test_equality_is_refused_exactly_where_the_binding_never_equates(left: str, right: str) -> None:
    value, failed = _run(f"{_SAMPLES[left]} == {_SAMPLES[right]}")
    assert not failed
    _, problem = _op("==", left, right)
    assert (problem is not None) == (value is False)
    listed, _ = _run(f"{_SAMPLES[left]} in [{_SAMPLES[right]}]")
    node = Op("in", (Lit(left, None, _SAMPLES[left]), Lit(right, None, "[..]")))
    _, problem = operation(node, [left, ListOf(right)])
    assert (problem is not None) == (listed is False)


@pytest.mark.parametrize(("left", "right"), _PAIRS)
@pytest.mark.parametrize("op", ["<", "+", "-", "*", "/", "%"])
def test_ordering_and_arithmetic_are_refused_exactly_where_the_binding_fails(
    op: str, left: str, right: str
) -> None:
    value, failed = _run(f"{_SAMPLES[left]} {op} {_SAMPLES[right]}")
    result, problem = _op(op, left, right)
    assert (problem is not None) == failed
    if not failed and op != "<":
        assert isinstance(value, _PYTHON[str(result)]), (value, result)


@pytest.mark.parametrize("kind", list(_SAMPLES))
@pytest.mark.parametrize("op", ["-", "!"])
def test_negation_is_refused_exactly_where_the_binding_fails(op: str, kind: str) -> None:
    _, failed = _run(f"{op}{_SAMPLES[kind]}")
    _, problem = _op(op, kind)
    assert (problem is not None) == failed


@pytest.mark.parametrize("kind", list(_SAMPLES))
def test_null_may_be_compared_for_equality_with_any_kind(kind: str) -> None:
    """An optional field may be null: ``recipient.urn == null`` is a fair question."""
    null, value = Lit("null", None, "null"), Lit(kind, None, _SAMPLES[kind])
    assert operation(Op("==", (value, null)), [kind, "null"])[1] is None
    assert operation(Op("!=", (null, value)), ["null", kind])[1] is None
