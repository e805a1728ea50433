"""CEL conditions: compiled once, unknown names refused at load, safe evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from broker.policy._cel import EventActivation, compile_condition
from broker.policy._cel_reads import (
    SAFEGUARDING_ATTRS,
    SUBJECT_ATTRS,
    Reads,
    blank_strings,
    reads_of,
)
from broker.policy._transform import age_in_years
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
    # Selecting a name is refused at load; a read the source check cannot see (through dyn)
    # still finds no name in the CEL view: the lookup fails, and a failure is None (the
    # caller picks the safe side).
    names, _ = compile_condition("event.subjects.exists(s, dyn(s)['given_name'] == 'Amy')")
    assert names is not None
    assert names.evaluate(act, None) is None


@pytest.mark.parametrize(
    ("justification", "concern", "seen"),
    [
        ("\u200b\ufeff ", False, None),
        ("", False, None),
        (None, False, None),
        ("Bruising on a non-mobile baby.", True, "Bruising on a non-mobile baby."),
    ],
)
def test_a_condition_sees_a_concern_only_as_the_override_judges_it(
    justification: str | None, concern: bool, seen: str | None
) -> None:
    """A flagged concern whose justification nobody can read is no concern to a condition
    either (a consent-free "level 4 or a concern" clause would share on it), and a
    justification of invisible characters reads as none."""
    act = EventActivation(event(safeguarding={"concern": True, "justification": justification}), AT)
    flag, _ = compile_condition("event.safeguarding.concern")
    why, _ = compile_condition("event.safeguarding.justification == null")
    assert flag is not None
    assert why is not None
    assert flag.evaluate(act, None) is concern
    assert why.evaluate(act, None) is (seen is None)


def test_a_baby_born_after_midnight_in_summer_is_aged_0_while_utc_is_on_the_day_before() -> None:
    """00:40 BST on 11 June is 23:40 UTC on the 10th: the event is valid, the age is not -1."""
    at = datetime(2026, 6, 10, 23, 40, tzinfo=UTC)
    newborn = event(
        occurred_at="2026-06-10T23:35:00Z", subjects=[subject("child", dob="2026-06-11")]
    )
    cond, _ = compile_condition("event.subjects.exists(s, s.age == 0)")
    assert cond is not None
    assert cond.evaluate(EventActivation(newborn, at), None) is True
    assert age_in_years(date(2026, 6, 11), date(2026, 6, 10)) == 0


def test_a_condition_may_negate_a_number() -> None:
    """Unary minus is CEL's operator '-_', not an unknown function."""
    cond, problems = compile_condition("event.subjects.exists(s, -s.age < -6)")
    assert (problems, cond is not None) == ([], True)
    assert cond is not None
    assert cond.evaluate(EventActivation(event(), AT), None) is True  # the kit's child is 7


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


def _view(source: str) -> Reads:
    cond, problems = compile_condition(source)
    assert cond is not None, problems
    return cond.view


@pytest.mark.parametrize(
    ("source", "seen"),
    [
        ("event.need_level >= 2", set()),
        ("event.subjects.exists(s, s.age < 5)", {"age"}),
        ("event.subjects.all(x, has(x.school_urn))", {"school_urn"}),
        ("event.subjects.exists(s, s.role == 'child' && s.postcode_district in ['DY4'])",
         {"role", "postcode_district"}),
        ("event.subjects.exists(s, s.role == 'child' && event.subjects.exists(t, t.age == s.age))",
         {"role", "age"}),
        ("event.subjects.exists(s, 's.age' == s.role)", {"role"}),  # a string is not a read
    ],
)  # fmt: skip
def test_a_condition_that_only_selects_subject_fields_sees_only_those(
    source: str, seen: set[str]
) -> None:
    assert _view(source).subject == seen


@pytest.mark.parametrize(
    "source",
    [
        "event.subjects.exists(s, s.age < 5) && size(event.subjects) > 1",
        "event.subjects.exists(s, s.age < 5) && event.subjects[0].role == 'child'",
        "event.subjects.map(s, s.age).exists(a, a < 5)",
        "event.subjects.filter(s, s.age < 5) == []",
        "event.subjects.exists(s, s == {'role': 'child'})",
        "event.subjects.exists(s, size(s) > 2)",
        "event.subjects.exists(s, s.size() > 2)",
        "event.subjects.exists(s, s.exists(k, k == 'age'))",
        "event.subjects.exists(s, s['age'] < 5)",
        "event.subjects.exists(s, s.?age.orValue(0) < 5)",
        "event.subjects.exists(s, s.age < 5) && event.categories.exists(s, s == 'x')",
    ],
)
def test_a_condition_that_reads_subjects_whole_sees_all_of_each(source: str) -> None:
    """Keys, sizes, comparisons, indexing: anything but selecting named fields sees it all."""
    assert reads_of(blank_strings(source), frozenset({"subjects"})).subject == SUBJECT_ATTRS


@pytest.mark.parametrize(
    ("source", "seen"),
    [
        ("event.safeguarding.concern", {"concern"}),
        ("has(event.safeguarding.justification) && event.safeguarding.concern",
         {"concern", "justification"}),
        ("event.safeguarding == {'concern': true}", SAFEGUARDING_ATTRS),
        ("size(event.safeguarding) > 1", SAFEGUARDING_ATTRS),
        ("event.safeguarding.exists(k, k == 'concern')", SAFEGUARDING_ATTRS),
    ],
)  # fmt: skip
def test_safeguarding_is_narrowed_to_the_fields_selected_by_name(
    source: str, seen: set[str]
) -> None:
    assert reads_of(blank_strings(source), frozenset({"safeguarding"})).safeguarding == seen


@pytest.mark.parametrize(
    ("source", "keyed"),
    [
        ("event.subjects.exists(s, s.age < 5) && event.safeguarding.concern", True),
        ("event.safeguarding.justification != null && event.need_level > 1", False),
        ("event.subjects.exists(s, s.age < 5) && size(event.summary) > 9", False),
        ("event.need_level > 1", False),  # memoised on the routing attributes instead
    ],
)
def test_only_conditions_that_observe_no_free_text_are_memoised_on_what_they_observe(
    source: str, keyed: bool
) -> None:
    cond, _ = compile_condition(source)
    assert cond is not None
    assert cond.view_keyed is keyed
