"""CEL conditions: compiled once, unknown names refused at load, safe evaluation."""

from __future__ import annotations

import pytest

from broker.policy._cel import EventActivation, compile_condition
from tests.unit.policy.kit import AT, event, subject


@pytest.mark.parametrize(
    "source",
    [
        "event.need_level >= 2 && event.need_level <= 3",
        "'refuge' in event.categories",
        "event.subjects.exists(s, s.role == 'child' && s.age < 5)",
        "recipient.kind == 'hub' && size(recipient.localities) > 0",
        "event.occurred_at > timestamp('2026-01-01T00:00:00Z')",
        "event.summary.contains('event.nope')",  # names inside strings are not references
    ],
)
def test_valid_conditions_compile(source: str) -> None:
    cond, problems = compile_condition(source)
    assert problems == []
    assert cond is not None


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("event.need_level >=", "does not compile"),
        ("evnt.need_level > 1", "unknown name 'evnt'"),
        ("event.servce == 'x'", "unknown field event.servce"),
        ("recipient.postcode == 'x'", "unknown field recipient.postcode"),
        ("lookup(event.type)", "unknown function 'lookup'"),
        # Reads that are not event.<field> would escape the field check and the memo key.
        ("event['nhs_numbr'] == 'x'", "must read fields as event.<field>"),
        ("event.need_level >= 1 && event['subjects'].exists(s, s.age < 5)", "must read fields"),
        ("(event).subjects.size() > 0", "must read fields"),
        ("recipient['postcode'] == 'x'", "must read fields"),
    ],
)
def test_bad_conditions_are_refused_with_a_reason(source: str, fragment: str) -> None:
    cond, problems = compile_condition(source)
    assert cond is None
    assert any(fragment in p for p in problems), problems


def test_condition_sees_ages_not_names() -> None:
    cond, _ = compile_condition("event.subjects.exists(s, s.role == 'child' && s.age == 7)")
    assert cond is not None
    act = EventActivation(event(), AT)
    assert cond.evaluate(act, None) is True
    names, _ = compile_condition("event.subjects.exists(s, s.given_name == 'Amy')")
    assert names is not None
    # The CEL view has no names: the lookup fails, and a failure is None (the caller
    # picks the safe side).
    assert names.evaluate(act, None) is None


def test_non_boolean_results_are_treated_as_failures() -> None:
    cond, _ = compile_condition("event.child_present")
    assert cond is not None
    assert cond.evaluate(EventActivation(event(child_present=None), AT), None) is None
    assert cond.evaluate(EventActivation(event(child_present=True), AT), None) is True


def test_routing_conditions_are_memoised_others_are_not() -> None:
    memo, _ = compile_condition("event.need_level >= 2")
    fresh, _ = compile_condition("event.summary.size() > 3")
    assert memo is not None
    assert fresh is not None
    assert memo.memoisable
    assert not fresh.memoisable


def test_a_memoised_condition_is_keyed_on_every_field_it_reads() -> None:
    """Two events alike in need level but not in the child's age get their own answers."""
    cond, _ = compile_condition("event.need_level >= 1 && event.subjects.exists(s, s.age < 5)")
    assert cond is not None
    older = event(need_level=2)  # the kit's child is seven
    younger = event(need_level=2, subjects=[subject("child", dob="2025-01-01")])
    assert cond.evaluate(EventActivation(older, AT), None) is False
    assert cond.evaluate(EventActivation(younger, AT), None) is True
