"""The checked-in JSON Schemas are exactly what the models generate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from broker.errors import EventInvalid
from broker.events import parse_event
from broker.events.schema import main, render, schemas
from broker.synthetic import SyntheticFamilies

REPO = Path(__file__).resolve().parents[3]
AT = datetime(2026, 11, 22, 12, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(schemas()))
def test_checked_in_schema_is_in_sync_with_the_model(name: str) -> None:
    path = REPO / "schemas" / name
    assert path.is_file(), f"{path} missing: run python -m broker.events.schema"
    assert path.read_text(encoding="utf-8") == render(schemas()[name]), (
        f"{name} is stale: run python -m broker.events.schema"
    )


def test_the_generator_writes_every_payloads_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [
        "access-ack.v1.json", "consent-record.v1.json", "consent-withdrawn-notice.v1.json",
        "contact-event.v1.json", "shared-record.v1.json",
    ]  # fmt: skip
    doc = json.loads((tmp_path / "contact-event.v1.json").read_text())
    assert doc["required"] == sorted(doc["required"]) or "subjects" in doc["required"]
    assert "police.domestic_incident" in json.dumps(doc)
    assert doc["additionalProperties"] is False


def _event() -> dict[str, object]:
    fam = SyntheticFamilies(seed=9, today=AT.date())
    return json.loads(json.dumps(fam.event("police.domestic_incident", "wmp"), default=str))


def _failures(validator: Draft202012Validator, doc: object) -> list[tuple[str, str]]:
    """Where the document fails and which keyword refuses it (inside a name's anyOf)."""
    return [
        ("/".join(map(str, e.absolute_path)), c.validator)
        for e in validator.iter_errors(doc)
        for c in e.context or [e]
        if c.validator != "type"
    ]


def test_a_name_of_spaces_only_fails_the_schema_as_the_model_refuses_it() -> None:
    """Stripped by the model, so refused; the schema's pattern says so too (minLength did not)."""
    validator = Draft202012Validator(schemas()["contact-event.v1.json"])
    event = _event()
    assert not list(validator.iter_errors(event))
    event["subjects"][0]["given_name"] = " \t "  # type: ignore[index]
    assert _failures(validator, event) == [("subjects/0/given_name", "pattern")]
    with pytest.raises(EventInvalid):
        parse_event(event, now=AT)
    consent = Draft202012Validator(schemas()["consent-record.v1.json"])
    record = {"subject": {"given_name": "  ", "family_name": "Smith", "dob": "2016-03-02"},
              "state": "given", "purposes": ["*"], "recipients": ["*"],
              "recorded_by": "swbh", "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
    assert _failures(consent, record) == [("subject/given_name", "pattern")]


@pytest.mark.parametrize("justification", [None, "", "  "])
def test_a_concern_without_a_justification_passes_the_schema_as_the_model_accepts_it(
    justification: str | None,
) -> None:
    """The brief decides such an event (consent not overridden); neither refuses it."""
    validator = Draft202012Validator(schemas()["contact-event.v1.json"])
    event = {**_event(), "safeguarding": {"concern": True, "justification": justification}}
    assert not list(validator.iter_errors(event))
    assert parse_event(event, now=AT).safeguarding.concern


def test_a_need_level_written_3_0_passes_the_schema_so_its_description_names_the_rule() -> None:
    """JSON Schema counts 3.0 an integer; the model, strict, does not."""
    doc = schemas()["contact-event.v1.json"]
    event = {**_event(), "need_level": 3.0}
    assert not list(Draft202012Validator(doc).iter_errors(event))
    with pytest.raises(EventInvalid) as err:
        parse_event(event, now=AT)
    assert [f for f, _ in err.value.problems] == ["need_level"]
    assert "need_level is written without a fraction (3, not 3.0" in doc["description"]
