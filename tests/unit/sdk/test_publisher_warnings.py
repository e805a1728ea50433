"""``Publisher.warnings`` takes what ``publish`` takes: docs/sdk.md documents it right after
saying events may be dicts, and a dict gave ``AttributeError``. A dict or JSON is validated
as ``publish`` validates it, so a bad one is ``EventInvalid`` naming fields only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.errors import EventInvalid
from broker.events import parse_event
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies

_OCCURRED = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
_NOW = _OCCURRED + timedelta(hours=1)
_WARNING = (
    "safeguarding.concern",
    "is true but its justification is empty: it will not override consent "
    "(docs/policy-language.md)",
)


def _event(justification: str | None, **fields: Any) -> dict[str, Any]:
    family = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
    event = family.event("police.domestic_incident", "wmp", occurred_at=_OCCURRED)
    event = json.loads(json.dumps(event, default=str))
    event["safeguarding"] = {"concern": True, "justification": justification}
    return {**event, **fields}


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"], kem=KemSuite.X25519)
    kafka = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT")
    envelope = EnvelopeSettings(kem=KemSuite.X25519)
    return Publisher("wmp", keys, kafka, envelope=envelope, clock=lambda: _NOW)


def _forms(event: dict[str, Any]) -> list[object]:
    text = json.dumps(event)
    return [event, text.encode(), text, parse_event(event, now=_NOW)]


@pytest.mark.parametrize("form", range(4), ids=["dict", "bytes", "str", "ContactEvent"])
def test_warnings_take_a_dict_json_or_a_contact_event(publisher: Publisher, form: int) -> None:
    unjustified = _forms(_event(None))[form]
    justified = _forms(_event("Asking would put her at risk."))[form]
    at_level_4 = _forms(_event("", need_level=4))[form]
    for warnings in (publisher.warnings, Publisher.warnings):
        assert warnings(unjustified) == [_WARNING]  # type: ignore[arg-type]
        assert warnings(justified) == []  # type: ignore[arg-type]
        assert warnings(at_level_4) == []  # type: ignore[arg-type]


def test_an_invalid_dict_or_json_is_event_invalid_naming_fields_only(
    publisher: Publisher,
) -> None:
    bad = _event(None, need_level="3")
    bad["subjects"][0]["nhs_number"] = "9990109282"  # a wrong check digit
    for given in (bad, json.dumps(bad).encode()):
        for warnings in (publisher.warnings, Publisher.warnings):
            with pytest.raises(EventInvalid) as info:
                warnings(given)
            assert dict(info.value.problems).keys() == {"need_level", "subjects[0].nhs_number"}
            assert "9990109282" not in str(info.value)
    with pytest.raises(EventInvalid):
        publisher.warnings(b"not json")


def test_on_a_publisher_a_dict_is_validated_as_its_publish_validates_it(
    publisher: Publisher,
) -> None:
    """Its clock and its party: an event of another sender would not be published."""
    with pytest.raises(EventInvalid) as info:
        publisher.warnings(_event(None, sender="bcc"))
    assert dict(info.value.problems) == {"sender": "must be 'wmp', the publishing party"}
    later = _event(None, occurred_at=(_NOW + timedelta(hours=1)).isoformat())
    with pytest.raises(EventInvalid) as info:
        publisher.warnings(later)
    assert dict(info.value.problems) == {"occurred_at": "is in the future"}
