"""An event id has one spelling, the lowercase hyphenated UUID: any other is refused by
name, never rewritten, by the model and the JSON Schema alike."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from broker.errors import EventInvalid
from broker.events import AccessAck, parse_event
from broker.events.schema import schemas
from broker.synthetic import SyntheticFamilies

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
ID = "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001"
SPELLINGS = [
    ID.upper(),
    ID.replace("-", ""),
    "{" + ID + "}",
    "urn:uuid:" + ID,
    " " + ID,
]


def _event(**changes: Any) -> dict[str, Any]:
    fam = SyntheticFamilies(seed=9, today=AT.date())
    event = json.loads(json.dumps(fam.event("police.domestic_incident", "wmp"), default=str))
    return {**event, **changes}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_another_spelling_of_a_uuid_is_refused_naming_event_id(spelling: str) -> None:
    with pytest.raises(EventInvalid) as err:
        parse_event(_event(event_id=spelling), now=AT)
    assert err.value.problems == [
        ("event_id", "must be a UUID in lowercase hyphenated form (8-4-4-4-12 hex digits)")
    ]


def test_the_canonical_spelling_is_kept_as_written() -> None:
    assert str(parse_event(_event(event_id=ID), now=AT).event_id) == ID
    made = uuid.uuid4()
    assert parse_event(_event(event_id=made), now=AT).event_id == made  # a UUID object too


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_schema_refuses_what_the_model_refuses(spelling: str) -> None:
    validator = Draft202012Validator(schemas()["contact-event.v1.json"])
    assert not list(validator.iter_errors(_event(event_id=ID)))
    assert [e.validator for e in validator.iter_errors(_event(event_id=spelling))] == ["pattern"]


def test_an_acknowledgement_names_a_record_by_its_canonical_id_only() -> None:
    ack = {"event_id": ID, "recipient": "sandwell-coord", "by": "hub-a/duty-1",
           "purpose": "early_help", "at": "2026-11-22T09:00:00Z"}  # fmt: skip
    assert AccessAck.model_validate(ack).event_id == ID
    with pytest.raises(ValueError, match="event_id"):
        AccessAck.model_validate({**ack, "event_id": ID.upper()})
