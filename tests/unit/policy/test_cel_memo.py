"""A narrowed or memoised condition answers exactly as the whole event does (hypothesis).

``Condition.evaluate`` gives a condition only what ``_cel_reads`` says it can observe, and
memoises one that observes no free text on exactly that. Neither may change an answer, so
both are held here to an oracle written independently of them: the program run on the whole
event, built as the engine built it before narrowing, with no memo. Conditions come from a
small grammar that mixes narrowable reads with ones that must see everything (indexing,
sizes, whole subjects, free text, the recipient), string and comment decoys included, and
each is asked about a run of events, so that a memo keyed on too little would answer one
event with another's result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.events import ContactEvent, parse_event
from broker.policy._cel import EventActivation, compile_condition
from broker.policy._cel_reads import ALL, NOTHING
from tests.unit.policy.kit import AT, cel_oracle

NHS = ["9997877896", "9999081002", "9991742182", "9993390755"]
HUB = {"id": "hub-tipton", "kind": "hub", "name": "Tipton hub", "localities": ["DY4"],
       "urn": None, "status": "active"}  # fmt: skip
SCHOOL = {"id": "school-a", "kind": "school", "name": "School A", "localities": [],
          "urn": "100001", "status": "active"}  # fmt: skip


# Predicates on one subject, bound to ``{v}``: selects only, so narrowable.
_ON_SUBJECT = [
    "{v}.age < {n}",
    "{v}.age == null",
    "{v}.role == 'child'",
    "{v}.role in ['parent', 'carer']",
    "{v}.postcode_district in ['DY4', 'WV10']",
    "{v}.postcode_district == recipient.localities[0]",
    "has({v}.school_urn)",
    "{v}.school_urn == '100001'",
    "{v}.school_urn == recipient.urn",
    "{v}.has_nhs_number",
]
# Reads that must see more than selected fields, or free text, or nothing of subjects.
_OTHER = [
    "size(event.subjects) > {n2}",
    "event.subjects[0].age < {n}",
    "event.subjects.map({v}, {v}.age).exists(a, a != null && a < {n})",
    "event.subjects.filter({v}, {v}.role == 'child').size() > 1",
    "event.subjects.exists({v}, size({v}) > 4)",
    "event.subjects.exists({v}, {v} == {{'role': 'child'}})",
    "event.subjects.exists({v}, {v}['age'] == {n})",
    "event.subjects.exists({v}, event.subjects.exists(w, w.age != null && {v}.age != null"
    " && w.age > {v}.age))",
    "event.safeguarding.concern",
    "has(event.safeguarding.justification) && event.safeguarding.justification != null",
    "size(event.safeguarding) == 2",
    "event.need_level >= {n2}",
    "event.child_present == true",
    "'refuge' in event.categories",
    "event.service == 'sexual_health'",
    "size(event.summary) > {n}",
    "event.reference.startsWith('WMP')",
    "recipient.kind == 'hub'",
]
# Strings and comments that a careless lexer reads as code, or code as a string.
_DECOYS = ["r'\\' != ''", "'//' != ''", "'''it\\'s''' != ''", "'event.subjects[0]' != ''"]


@st.composite
def atoms(draw: st.DrawFn) -> str:
    v = draw(st.sampled_from(["s", "x", "age"]))  # ``age``: a variable named like a field
    n, n2 = draw(st.integers(0, 20)), draw(st.integers(0, 4))
    if draw(st.booleans()):
        body = " && ".join(
            draw(st.lists(st.sampled_from(_ON_SUBJECT), min_size=1, max_size=2))
        ).format(v=v, n=n)
        quantifier = draw(st.sampled_from(["all", "exists", "exists_one"]))
        return f"event.subjects.{quantifier}({v}, {body})"
    return draw(st.sampled_from(_OTHER)).format(v=v, n=n, n2=n2)


@st.composite
def conditions(draw: st.DrawFn) -> str:
    parts = draw(st.lists(atoms(), min_size=1, max_size=3))
    joiners = draw(st.lists(st.sampled_from([" && ", " || "]), min_size=2, max_size=2))
    source = parts[0]
    for joiner, part in zip(joiners, parts[1:], strict=False):
        source += joiner + (f"!({part})" if draw(st.booleans()) else part)
    if draw(st.booleans()):
        source = f"{draw(st.sampled_from(_DECOYS))} && ({source})"
    if draw(st.booleans()):
        source += " // it's a comment: 'event.subjects[0]'\n"
    return source


@st.composite
def events(draw: st.DrawFn) -> ContactEvent:
    subjects = []
    for i in range(draw(st.integers(1, 4))):
        subject: dict[str, Any] = {
            "role": draw(st.sampled_from(["child", "child", "parent", "carer", "sibling"])),
            "given_name": "Sam",
            "family_name": "Test",
        }
        if draw(st.booleans()):
            subject["nhs_number"] = NHS[i]
        if (dob := draw(st.sampled_from([None, "2024-01-01", "2019-03-02", "2010-11-22",
                                         "2010-11-23", "1990-01-01"]))) is not None:  # fmt: skip
            subject["dob"] = dob
        if (
            postcode := draw(st.sampled_from([None, "DY4 7AA", "WV10 6QA", "B70 7AZ"]))
        ) is not None:
            subject["postcode"] = postcode
        if (urn := draw(st.sampled_from([None, "100001", "100002"]))) is not None:
            subject["school_urn"] = urn
        subjects.append(subject)
    concern = draw(st.booleans())
    data = {
        "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
        "type": "police.domestic_incident",
        "sender": "wmp",
        "occurred_at": "2026-11-21T22:40:00Z",
        "reference": draw(st.sampled_from(["WMP/26/1", "X/1"])),
        "summary": draw(st.sampled_from(["short", "a longer summary of the incident"])),
        "need_level": draw(st.integers(1, 4)),
        "child_present": draw(st.sampled_from([True, False, None])),
        "categories": draw(st.lists(st.sampled_from(["refuge", "domestic_abuse"]), unique=True)),
        "service": draw(st.sampled_from([None, "sexual_health"])),
        "safeguarding": {
            "concern": concern,
            "justification": draw(st.sampled_from([None, "risk of harm"])) if concern else None,
        },
        "subjects": subjects,
    }
    return parse_event(data, now=AT)


@settings(max_examples=300, deadline=None)
@given(
    source=conditions(),
    evs=st.lists(events(), min_size=2, max_size=5),
    days=st.lists(st.sampled_from([0, 1, 365]), min_size=2, max_size=2),
)
def test_a_narrowed_memoised_condition_answers_as_the_whole_event(
    source: str, evs: list[ContactEvent], days: list[int]
) -> None:
    cond, problems = compile_condition(source)
    assert cond is not None, problems
    for ev in evs * 2:  # and again: answers from the memo, where it memoises
        for day in days:  # ages move with the decision time
            at = AT + timedelta(days=day)
            for recipient in (None, HUB, SCHOOL):
                expected = cel_oracle(cond, EventActivation(ev, at), recipient)
                # A decision's shared context may hold everything, nothing, or exactly this.
                for shared in (ALL, NOTHING, cond.view):
                    got = cond.evaluate(EventActivation(ev, at, shared), recipient)
                    assert got == expected, (source, shared, recipient)


@pytest.mark.parametrize(
    "decoy",
    [
        r"r'\' != ''",  # raw: the backslash escapes nothing, so its quote ends the string
        "true // it's '''\n",  # a quote in a comment opens no string
        r"'''it\'s''' != ''",  # an escaped quote inside triple quotes
    ],
)
def test_no_string_or_comment_hides_a_read_from_the_memo_key(decoy: str) -> None:
    """Each decoy once made the code after it look like part of a string: the condition was
    then memoised on what was left, answering one family's event with another's answer."""
    cond, problems = compile_condition(
        f"{decoy} && event.subjects.exists(s, s.age < 11) && event.need_level > 1 && '' == ''"
    )
    assert cond is not None, problems
    assert "subjects" in cond.event_attrs
    assert not cond.memoisable
    young = parse_event({**_BASE, "subjects": [{**_CHILD, "dob": "2019-03-02"}]}, now=AT)
    old = parse_event({**_BASE, "subjects": [{**_CHILD, "dob": "2010-03-02"}]}, now=AT)
    assert cond.evaluate(EventActivation(young, AT, cond.view), None) is True
    assert cond.evaluate(EventActivation(old, AT, cond.view), None) is False


_CHILD = {"role": "child", "nhs_number": NHS[0]}
_BASE = {
    "event_id": "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001",
    "type": "police.domestic_incident",
    "sender": "wmp",
    "occurred_at": "2026-11-21T22:40:00Z",
    "need_level": 3,
}
