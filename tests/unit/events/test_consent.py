"""Consent records: validation, how they match a subject, when they are in force."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from broker.errors import EventInvalid
from broker.events import parse_consent, parse_event
from tests.unit.policy.kit import AT, CHILD_NHS, event_dict, subject

BASE = {
    "state": "given",
    "purposes": ["early_help"],
    "recipients": ["kind:hub"],
    "recorded_by": "coord",
    "recorded_at": "2026-10-01T09:00:00Z",
}


def test_an_nhs_record_matches_only_that_nhs_number() -> None:
    ev = parse_event(event_dict(), now=AT)
    rec = parse_consent({**BASE, "subject": {"nhs_number": CHILD_NHS}}, now=AT)
    assert rec.subject.matches(ev.subjects[0])
    assert not rec.subject.matches(ev.subjects[1])


def test_a_demographic_record_matches_normalised_names_and_dob() -> None:
    ev = parse_event(
        event_dict(
            subjects=[subject("child", nhs_number=None, given_name="Amy-Jo", family_name="O'Neil")]
        ),
        now=AT,
    )
    rec = parse_consent(
        {**BASE, "subject": {"given_name": "amy jo", "family_name": "ONEIL", "dob": "2019-03-02"}},
        now=AT,
    )
    assert rec.subject.matches(ev.subjects[0])
    other_dob = parse_consent(
        {**BASE, "subject": {"given_name": "Amy-Jo", "family_name": "O'Neil", "dob": "2019-03-03"}},
        now=AT,
    )
    assert not other_dob.subject.matches(ev.subjects[0])
    other_postcode = parse_consent(
        {**BASE, "subject": {"given_name": "Amy-Jo", "family_name": "O'Neil", "dob": "2019-03-02",
                             "postcode": "WS10 7DE"}},
        now=AT,
    )  # fmt: skip
    assert not other_postcode.subject.matches(ev.subjects[0])


def test_a_demographic_record_needs_names_and_dob() -> None:
    with pytest.raises(EventInvalid) as info:
        parse_consent({**BASE, "subject": {"family_name": "Hollis"}}, now=AT)
    assert info.value.problems[0][0] == "subject"


def test_in_force_from_recorded_at_until_valid_until_inclusive() -> None:
    rec = parse_consent(
        {**BASE, "subject": {"nhs_number": CHILD_NHS}, "valid_until": "2026-12-31"}, now=None
    )
    assert not rec.in_force(datetime(2026, 10, 1, 8, 59, tzinfo=UTC))
    assert rec.in_force(datetime(2026, 10, 1, 9, 0, tzinfo=UTC))
    assert rec.in_force(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert not rec.in_force(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))


def test_covers_purpose_and_recipient_by_id_kind_or_star() -> None:
    rec = parse_consent({**BASE, "subject": {"nhs_number": CHILD_NHS}}, now=None)
    assert rec.covers("early_help", "hub-tipton", "hub")
    assert not rec.covers("safeguarding", "hub-tipton", "hub")
    assert not rec.covers("early_help", "coord", "coordinating_team")
    star = parse_consent(
        {**BASE, "subject": {"nhs_number": CHILD_NHS}, "purposes": ["*"], "recipients": ["coord"]},
        now=None,
    )
    assert star.covers("anything", "coord", "coordinating_team")
    assert not star.covers("anything", "hub-tipton", "hub")


def test_recorded_in_the_future_is_refused_when_a_clock_is_given() -> None:
    data = {**BASE, "subject": {"nhs_number": CHILD_NHS}, "recorded_at": "2027-01-01T00:00:00Z"}
    with pytest.raises(EventInvalid) as info:
        parse_consent(data, now=AT)
    assert info.value.problems == [("recorded_at", "is in the future")]
    assert parse_consent(data, now=None).state == "given"


def test_unknown_state_and_bad_nhs_number_name_their_fields() -> None:
    data = {**BASE, "subject": {"nhs_number": "9997877897"}, "state": "maybe"}
    with pytest.raises(EventInvalid) as info:
        parse_consent(data, now=AT)
    assert {p for p, _ in info.value.problems} == {"subject.nhs_number", "state"}
    assert "9997877897" not in str(info.value)


def test_an_unknown_key_of_a_consent_record_is_named_only_as_a_near_miss() -> None:
    data = {**BASE, "recorded_att": "x", "ruby_holland": "x",
            "subject": {"nhs_number": CHILD_NHS, "postcod": "x"}}  # fmt: skip
    with pytest.raises(EventInvalid) as info:
        parse_consent(data, now=AT)
    assert sorted(info.value.problems) == [
        ("(unknown field)", "is not a field of this record"),
        ("recorded_att", "is not a field of this record (did you mean 'recorded_at'?)"),
        ("subject.postcod", "is not a field of this record (did you mean 'postcode'?)"),
    ]
    assert "ruby_holland" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"valid_until": "2026-09-30"}, "could never be in force"),
        ({"subject": {"nhs_number": CHILD_NHS, "dob": "2099-01-01"}}, "after recorded_at"),
        ({"subject": {"given_name": "Amy", "family_name": "Hollis", "dob": "1899-12-31"}},
         "before 1900"),
    ],
)  # fmt: skip
def test_a_consent_record_that_cannot_be_right_is_refused(
    change: dict[str, object], says: str
) -> None:
    record = {**BASE, "subject": {"nhs_number": CHILD_NHS}, **change}
    with pytest.raises(EventInvalid, match=says) as err:
        parse_consent(record, now=AT)
    assert "2099" not in str(err.value)
    assert "Hollis" not in str(err.value)


def test_consent_recorded_just_after_midnight_in_summer_may_name_a_baby_born_that_day() -> None:
    """23:40 UTC on 10 June is 00:40 on the 11th in England, the day the baby was born."""
    record = {**BASE, "subject": {"nhs_number": CHILD_NHS, "dob": "2026-06-11"},
              "recorded_at": "2026-06-10T23:40:00Z"}  # fmt: skip
    assert parse_consent(record, now=AT).subject.dob == date(2026, 6, 11)
    with pytest.raises(EventInvalid, match="after recorded_at"):
        parse_consent({**record, "recorded_at": "2026-06-10T22:50:00Z"}, now=AT)


def test_a_record_filed_before_these_rules_is_still_read_back_as_filed() -> None:
    """Worker state holds records checked by the rules of their day; dropping a withdrawal at
    restart would put the consent it withdrew back in force."""
    from broker.events import ConsentRecord

    filed = {**BASE, "state": "withdrawn", "subject": {"nhs_number": "9999999999",
                                                       "dob": "2099-01-01"}}  # fmt: skip
    with pytest.raises(EventInvalid):
        parse_consent(filed, now=AT)  # as it comes in: refused
    record = ConsentRecord.model_validate(filed)  # as worker state reads it back
    assert (record.state, record.subject.nhs_number) == ("withdrawn", "9999999999")


@pytest.mark.parametrize(
    ("change", "field"),
    [({"recorded_at": "20261121"}, "recorded_at"), ({"recorded_at": 1795000000}, "recorded_at"),
     ({"recorded_at": "1.7952e9"}, "recorded_at"),
     ({"valid_until": "20261130"}, "valid_until")],
)  # fmt: skip
def test_a_consent_time_given_as_a_number_is_refused_not_read_as_1970(
    change: dict[str, object], field: str
) -> None:
    """A withdrawal dated "20261121" would otherwise be older than the consent it withdraws."""
    record = {**BASE, "subject": {"nhs_number": CHILD_NHS}, **change}
    with pytest.raises(EventInvalid) as err:
        parse_consent(record, now=AT)
    assert field in dict(err.value.problems)
