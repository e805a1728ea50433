"""What the JSON Schemas' descriptions tell another language's implementer holds true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.events._identifiers import normalise_nhs_number

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _nhs_description() -> str:
    doc = json.loads((SCHEMAS / "contact-event.v1.json").read_text("utf-8"))
    branches = doc["$defs"]["Subject"]["properties"]["nhs_number"]["anyOf"]
    return next(b["description"] for b in branches if b.get("type") == "string")


@pytest.mark.parametrize("spelling", ["943 476 5919", "943-476-5919", "9434765919"])
def test_the_nhs_number_spellings_the_schema_says_are_taken_normalise_as_it_says(
    spelling: str,
) -> None:
    assert spelling in _nhs_description()
    assert normalise_nhs_number(spelling) == "9434765919"


def test_the_nhs_number_spelling_the_schema_says_is_refused_is_refused() -> None:
    assert "943.476.5919" in _nhs_description()
    with pytest.raises(ValueError, match="10 digits"):
        normalise_nhs_number("943.476.5919")


def test_the_shared_record_schema_names_every_key_of_view_sharing() -> None:
    doc = json.loads((SCHEMAS / "shared-record.v1.json").read_text("utf-8"))
    said = doc["properties"]["view"]["description"]
    redact = (Path(__file__).resolve().parents[3] / "broker/policy/_redact.py").read_text()
    block = redact[redact.index('view["sharing"] = {') : redact.index("return view")]
    keys = [line.split('"')[1] for line in block.splitlines()[1:] if line.strip().startswith('"')]
    assert len(keys) == 9
    for key in keys:
        assert key in said, key
