"""Contact event v1 validation: every problem names its field and never its value."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from broker.errors import EventInvalid, UsageError
from broker.events import CLOCK_SKEW, ContactEvent, parse_consent, parse_event
from broker.synthetic import SyntheticFamilies
from tests.unit.policy.kit import AT, event_dict, subject


def _problems(data: Any, now: datetime = AT) -> dict[str, str]:
    with pytest.raises(EventInvalid) as info:
        parse_event(data, now=now)
    return dict(info.value.problems)


def test_the_brief_example_event_validates_from_dict_and_from_json_bytes() -> None:
    data = event_dict()
    from_dict = parse_event(data, now=AT)
    from_bytes = parse_event(json.dumps(data).encode(), now=AT)
    assert from_dict == from_bytes
    assert from_dict.subjects[0].postcode == "DY4 7AA"
    assert from_dict.need_level == 3


def test_a_bad_check_digit_names_the_field_not_the_value() -> None:
    data = event_dict(subjects=[subject("child", nhs_number="9997877897")])
    with pytest.raises(EventInvalid) as info:
        parse_event(data, now=AT)
    assert info.value.problems == [
        ("subjects[0].nhs_number", "check digit does not match (modulus 11)")
    ]
    assert "9997877897" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    data = event_dict(
        need_level=5,
        type="police.unknown",
        subjects=[{**subject("child", postcode="NOT A CODE", dob="2030-01-01"), "role": "cousin"}],
    )
    problems = _problems(data)
    assert set(problems) >= {
        "need_level",
        "type",
        "subjects[0].postcode",
        "subjects[0].dob",
        "subjects[0].role",
    }
    text = " ".join(problems.values())
    assert "NOT A CODE" not in text
    assert "2030" not in text


@pytest.mark.parametrize("level", [0, 5, -1])
def test_need_level_is_one_to_four(level: int) -> None:
    assert "need_level" in _problems(event_dict(need_level=level))


def test_at_least_one_subject() -> None:
    problems = _problems(event_dict(subjects=[]))
    assert list(problems) == ["subjects"]


def test_a_subject_needs_an_nhs_number_or_both_names() -> None:
    anonymous = {"role": "child", "given_name": "Amy"}
    problems = _problems(event_dict(subjects=[anonymous]))
    assert problems == {"subjects[0]": "needs nhs_number, or given_name and family_name"}
    parse_event(
        event_dict(subjects=[{"role": "child", "given_name": "A", "family_name": "B"}]), now=AT
    )


def test_occurred_at_in_the_future_beyond_the_skew_is_refused() -> None:
    ahead = AT + CLOCK_SKEW + timedelta(seconds=1)
    problems = _problems(event_dict(occurred_at=ahead.isoformat()))
    assert problems == {"occurred_at": "is in the future"}


def test_occurred_at_within_the_skew_is_accepted() -> None:
    parse_event(event_dict(occurred_at=(AT + CLOCK_SKEW).isoformat()), now=AT)


def test_the_clock_is_injected_the_same_event_is_valid_later() -> None:
    data = event_dict(occurred_at="2027-01-01T00:00:00Z")
    assert "occurred_at" in _problems(data)
    parse_event(data, now=datetime(2027, 1, 2, tzinfo=UTC))


def test_a_subject_born_on_the_day_of_the_event_is_accepted() -> None:
    """A newborn can be the subject of an event the same day, even just after midnight."""
    parse_event(
        event_dict(
            occurred_at="2026-11-21T00:10:00Z", subjects=[subject("child", dob="2026-11-21")]
        ),
        now=AT,
    )


def test_a_subject_born_the_day_after_the_event_is_refused_naming_the_field_not_the_value() -> None:
    late = subject("sibling", nhs_number="9999081002", dob="2026-11-22")
    data = event_dict(subjects=[subject("child"), late])
    for raw in (data, json.dumps(data).encode()):
        with pytest.raises(EventInvalid) as info:
            parse_event(raw, now=AT)
        assert info.value.problems == [("subjects[1].dob", "is after occurred_at")]
        assert "2026-11-22" not in str(info.value)


def test_every_subject_born_after_the_event_is_reported() -> None:
    late = {"dob": "2026-11-22"}
    data = event_dict(
        subjects=[
            subject("child", **late),
            subject("parent"),
            subject("sibling", nhs_number="9999081002", **late),
        ]
    )
    assert _problems(data) == {
        "subjects[0].dob": "is after occurred_at",
        "subjects[2].dob": "is after occurred_at",
    }


def test_the_day_of_occurred_at_is_the_latest_in_england_or_in_the_senders_offset() -> None:
    """A baby born at 00:30 British Summer Time on 11 June may be in an event stamped in UTC
    (23:30 on the 10th) or with its own offset; one stamped before 23:55 BST on the 10th
    (with the clock skew) may not name it."""
    born = [subject("child", dob="2026-06-11")]
    parse_event(event_dict(occurred_at="2026-06-11T00:30:00+01:00", subjects=born), now=AT)
    parse_event(event_dict(occurred_at="2026-06-10T23:30:00Z", subjects=born), now=AT)
    parse_event(event_dict(occurred_at="2026-06-10T22:56:00Z", subjects=born), now=AT)
    refused = _problems(event_dict(occurred_at="2026-06-10T22:54:00Z", subjects=born))
    assert refused == {
        "occurred_at": "is before every subject's date of birth",
        "subjects[0].dob": "is after occurred_at",
    }
    # The sender's own day, whatever England's (still the 10th there):
    parse_event(event_dict(occurred_at="2026-06-11T07:00:00+09:00", subjects=born), now=AT)


def test_a_baby_born_after_midnight_in_summer_is_not_born_in_the_future() -> None:
    """The worker's clock is UTC: at 23:40 UTC on 10 June it is already 11 June in England."""
    late_evening = datetime(2026, 6, 10, 23, 40, tzinfo=UTC)
    data = event_dict(
        occurred_at="2026-06-10T23:35:00Z", subjects=[subject("child", dob="2026-06-11")]
    )
    parse_event(data, now=late_evening)
    tomorrow = event_dict(
        occurred_at="2026-06-10T23:35:00Z", subjects=[subject("child", dob="2026-06-12")]
    )
    with pytest.raises(EventInvalid) as info:
        parse_event(tomorrow, now=late_evening)
    assert ("subjects[0].dob", "is in the future") in info.value.problems


@pytest.mark.parametrize("justification", [None, "", "   ", "\u200b", "\ufeff\u200d\u2060 "])
def test_a_concern_with_an_empty_or_invisible_justification_is_a_valid_unjustified_event(
    justification: str | None,
) -> None:
    """The brief decides it (no override), so it is not refused; ``unjustified`` says so."""
    sg = parse_event(
        event_dict(safeguarding={"concern": True, "justification": justification}), now=AT
    ).safeguarding
    assert sg.concern
    assert (sg.justified, sg.unjustified) == (False, True)


@pytest.mark.parametrize("justification", ["Asking would put her at risk.", "\u200bx", "\u00e9"])
def test_a_concern_with_a_visible_character_in_its_justification_is_justified(
    justification: str,
) -> None:
    sg = parse_event(
        event_dict(safeguarding={"concern": True, "justification": justification}), now=AT
    ).safeguarding
    assert (sg.justified, sg.unjustified) == (True, False)


def test_no_concern_is_neither_justified_nor_unjustified() -> None:
    sg = parse_event(
        event_dict(safeguarding={"concern": False, "justification": "risk"}), now=AT
    ).safeguarding
    assert (sg.justified, sg.unjustified) == (False, False)


def test_validating_without_a_clock_is_a_programming_error() -> None:
    with pytest.raises(UsageError, match="parse_event"):
        ContactEvent.model_validate(event_dict())


def test_naive_timestamps_are_refused() -> None:
    assert "occurred_at" in _problems(event_dict(occurred_at="2026-11-21T22:40:00"))


def test_free_text_has_size_limits() -> None:
    problems = _problems(event_dict(summary="x" * 4001, location="y" * 501))
    assert set(problems) == {"summary", "location"}


def test_an_unknown_key_is_named_only_when_it_is_a_near_miss_of_that_objects_field() -> None:
    """A key is the sender's text (a mapping bug can make a surname one): a typo of one of
    that object's own field names is named, with the field it nearly is; anything else,
    even one lowercase with underscores, only where it was; a value never."""
    problems = _problems(
        event_dict(
            occured_at="2026-11-21T22:40:00Z",
            ruby_holland="x",
            colour="blue",
            **{"9997877896": 1},
            subjects=[subject("child", nhs_numbr="9997877896", AmyHollis=1, rose=1)],
        )
    )
    unknown = "is not a field of this record"
    assert problems == {
        "occured_at": f"{unknown} (did you mean 'occurred_at'?)",
        "(unknown field)": unknown,
        "subjects[0].nhs_numbr": f"{unknown} (did you mean 'nhs_number'?)",
        "subjects[0].(unknown field)": unknown,
    }
    for sent in ("ruby_holland", "colour", "blue", "9997877896", "AmyHollis", "rose"):
        assert sent not in str(problems)


def test_a_near_miss_is_of_the_objects_own_fields_not_anothers() -> None:
    """'nhs_numbr' at the top is no field's near miss there: not named."""
    problems = _problems(event_dict(nhs_numbr="9997877896"))
    assert problems == {"(unknown field)": "is not a field of this record"}


def test_school_urn_is_six_digits() -> None:
    problems = _problems(event_dict(subjects=[subject("child", school_urn="12")]))
    assert set(problems) == {"subjects[0].school_urn"}


def test_not_json_is_one_clear_problem() -> None:
    problems = _problems(b"{not json")
    assert list(problems.values()) == ["is not valid JSON"]


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(EventInvalid):
        parse_event([1, 2], now=AT)  # type: ignore[arg-type]  # deliberately wrong type


def test_synthetic_events_validate() -> None:
    fam = SyntheticFamilies(seed=11)
    for _ in range(20):
        ev = parse_event(fam.event(), now=AT)
        assert all(s.nhs_number and s.nhs_number.startswith("999") for s in ev.subjects)


def test_synthetic_events_set_in_the_past_never_name_someone_born_after_them() -> None:
    """Default subjects are aged on the event's day; a subject given is checked, not sent."""
    fam = SyntheticFamilies(seed=4, today=date(2026, 11, 1))
    past = datetime(2026, 6, 1, 9, tzinfo=UTC)
    for _ in range(300):  # about 17 newborns: each is born by the event's day
        parse_event(fam.event(occurred_at=past), now=AT)
    newborn = fam.subject("child", age=0)
    newborn["dob"] = "2026-06-02"
    with pytest.raises(ValueError, match=r"subjects\[0\] is born after occurred_at"):
        fam.event(subjects=[newborn], occurred_at=past)
    born_by = fam.subject("child", age=0, on=past.date())
    parse_event(fam.event(subjects=[born_by], occurred_at=past), now=AT)


MARK = "ZQXSECRETQZX"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", MARK),
        ("type", MARK),
        ("sender", MARK),
        ("occurred_at", MARK),
        ("need_level", MARK),
        ("child_present", MARK),
        ("categories", [MARK]),
        ("service", MARK),
        ("subjects.nhs_number", MARK),
        ("subjects.dob", MARK),
        ("subjects.postcode", MARK),
        ("subjects.role", MARK),
        ("subjects.school_urn", MARK),
        ("subjects.given_name", MARK * 10),
        ("subjects.address", MARK * 50),
    ],
)
def test_no_problem_message_ever_quotes_the_value(field: str, value: Any) -> None:
    data = event_dict()
    if field.startswith("subjects."):
        data["subjects"] = [{**subject("child"), field.removeprefix("subjects."): value}]
    else:
        data[field] = value
    with pytest.raises(EventInvalid) as info:
        parse_event(data, now=AT)
    assert MARK not in str(info.value)
    assert all(MARK not in path + msg for path, msg in info.value.problems)
    assert any(
        path.endswith(field.rsplit(".", 1)[-1]) or field in path for path, _ in info.value.problems
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"occurred_at": "20261120"}, "occurred_at"),  # a compact date: not 1970-08-23
        ({"occurred_at": 1795000000}, "occurred_at"),
        ({"occurred_at": "2.026112E+07"}, "occurred_at"),  # a number, spelt otherwise
        ({"occurred_at": " 1795000000.5"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),  # no UTC time at all
        ({"subjects": [subject("child", dob="20160302")]}, "subjects[0].dob"),
        ({"subjects": [subject("child", dob=0)]}, "subjects[0].dob"),
        ({"need_level": True}, "need_level"),
        ({"need_level": "3"}, "need_level"),
        ({"child_present": 1}, "child_present"),
        ({"child_present": "yes"}, "child_present"),
        ({"safeguarding": {"concern": "yes", "justification": "x"}}, "safeguarding.concern"),
        ({"safeguarding": {"concern": 1, "justification": "x"}}, "safeguarding.concern"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("as_json", [False, True])
def test_a_value_of_another_type_is_refused_not_converted(
    change: dict[str, Any], field: str, as_json: bool
) -> None:
    """What the schema says a field is, and nothing pydantic's lax mode would make of it."""
    data = event_dict(**change)
    problems = _problems(json.dumps(data).encode() if as_json else data)
    assert field in problems


@pytest.mark.parametrize(
    "text",
    [
        '{"need_level": 3, "need_level": 1}',
        '{"subjects": [{"role": "child", "role": "parent"}]}',  # in a nested object too
    ],
)
def test_a_key_given_twice_is_refused_as_the_gateway_refuses_it(text: str) -> None:
    """A walkthrough: validate(bytes) kept the last value where the gateway refuses."""
    for data in (text, text.encode()):
        assert _problems(data) == {"(event)": "a key appears twice in one JSON object"}


def test_a_consent_record_with_a_key_given_twice_is_refused_with_its_place() -> None:
    with pytest.raises(EventInvalid) as info:
        parse_consent(b'{"a": 1, "a": 2}', now=AT, prefix="[2].")
    assert info.value.problems == [("[2].(event)", "a key appears twice in one JSON object")]


def test_a_leading_byte_order_mark_is_ignored_as_the_gateway_ignores_it() -> None:
    """A walkthrough: the gateway took a body with a BOM, the SDK said it was not JSON."""
    event = event_dict()
    text = json.dumps(event)
    for data in ("\ufeff" + text, b"\xef\xbb\xbf" + text.encode()):
        assert str(parse_event(data, now=AT).event_id) == event["event_id"]
