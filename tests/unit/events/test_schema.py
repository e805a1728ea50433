"""The checked-in JSON Schemas are exactly what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.events.schema import main, render, schemas

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(schemas()))
def test_checked_in_schema_is_in_sync_with_the_model(name: str) -> None:
    path = REPO / "schemas" / name
    assert path.is_file(), f"{path} missing: run python -m broker.events.schema"
    assert path.read_text(encoding="utf-8") == render(schemas()[name]), (
        f"{name} is stale: run python -m broker.events.schema"
    )


def test_the_generator_writes_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["consent-record.v1.json", "contact-event.v1.json"]
    doc = json.loads((tmp_path / "contact-event.v1.json").read_text())
    assert doc["required"] == sorted(doc["required"]) or "subjects" in doc["required"]
    assert "police.domestic_incident" in json.dumps(doc)
    assert doc["additionalProperties"] is False
