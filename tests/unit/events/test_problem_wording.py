"""What a sender is told about a bad field, in the terms of the JSON it wrote (never a
Python type, never a value), and a date of birth that is a date, as the schema says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from broker.errors import EventInvalid
from broker.events import parse_consent, parse_event
from broker.events.schema import schemas
from broker.synthetic import SyntheticFamilies

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
DOB_RULE = "must be an ISO 8601 date, year first (2016-03-02)"


def _event(**changes: Any) -> dict[str, Any]:
    fam = SyntheticFamilies(seed=9, today=AT.date())
    event = json.loads(json.dumps(fam.event("police.domestic_incident", "wmp"), default=str))
    return {**event, **changes}


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(EventInvalid) as info:
        parse_event(data, now=AT)
    return info.value.problems


@pytest.mark.parametrize(
    "dob", ["2018-05-14T00:00:00Z", "2018-05-14T00:00:00", "2018-05-14 ", "14/05/2018", 20180514]
)
def test_a_date_of_birth_that_is_not_a_plain_date_is_refused(dob: object) -> None:
    event = _event()
    event["subjects"][0]["dob"] = dob
    assert _problems(event) == [("subjects[0].dob", DOB_RULE)]
    record = {"subject": {"given_name": "Amy", "family_name": "Hollis", "dob": dob},
              "state": "given", "purposes": ["*"], "recipients": ["*"],
              "recorded_by": "swbh", "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
    with pytest.raises(EventInvalid) as info:
        parse_consent(record, now=AT)
    assert info.value.problems == [("subject.dob", DOB_RULE)]


@pytest.mark.parametrize("dob", ["2018-02-30", "2018-13-01", "2018-00-10"])
def test_a_date_of_birth_no_calendar_has_is_called_that_not_a_date_or_datetime(dob: str) -> None:
    event = _event()
    event["subjects"][0]["dob"] = dob
    assert _problems(event) == [
        ("subjects[0].dob", "must be a real calendar date, year first (2016-03-02)")
    ]


def test_the_schema_and_the_model_agree_a_date_time_is_no_date_of_birth() -> None:
    checker = Draft202012Validator.FORMAT_CHECKER
    validator = Draft202012Validator(schemas()["contact-event.v1.json"], format_checker=checker)
    event = _event()
    assert not list(validator.iter_errors(event))
    parse_event(event, now=AT)
    event["subjects"][0]["dob"] = "2018-05-14T00:00:00Z"
    assert list(validator.iter_errors(event))
    assert _problems(event) == [("subjects[0].dob", DOB_RULE)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"categories": "domestic_abuse"}, ("categories", "must be a list")),
        ({"subjects": []}, ("subjects", "must have at least 1 item")),
        ({"categories": ["a"] * 21}, ("categories", "must have at most 20 items")),
        ({"safeguarding": "none"}, ("safeguarding", "must be an object")),
        ({"need_level": "3"}, ("need_level", "must be an integer")),
        ({"child_present": "yes"}, ("child_present", "must be true or false")),
        ({"summary": 5}, ("summary", "must be a string")),
        ({"summary": "x" * 4001}, ("summary", "must have at most 4000 characters")),
        ({"occurred_at": "yesterday"},
         ("occurred_at", "must be an ISO 8601 date-time (2026-11-21T22:40:00Z)")),
    ],
)  # fmt: skip
def test_problems_are_worded_in_json_terms(
    change: dict[str, Any], problem: tuple[str, str]
) -> None:
    assert _problems(_event(**change)) == [problem]


def test_a_missing_field_is_required_and_a_wrong_type_lists_the_allowed_ones() -> None:
    event = _event(type="police.burglary")
    del event["sender"]
    problems = dict(_problems(event))
    assert problems["sender"] == "is required"
    assert problems["type"].startswith("must be one of 'police.domestic_incident', ")
    assert "police.burglary" not in str(problems)


def test_an_event_dated_before_every_birth_names_occurred_at_as_well() -> None:
    """occurred_at 1900-01-01 (a default date) is the likelier mistake: both are named."""
    problems = _problems(_event(occurred_at="1900-01-01T00:00:00Z"))
    assert problems[0] == ("occurred_at", "is before every subject's date of birth")
    assert {f for f, _ in problems[1:]} == {
        f"subjects[{i}].dob" for i, s in enumerate(_event()["subjects"]) if s.get("dob")
    }
