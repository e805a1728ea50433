"""docs/gateway.md says what the gateway does: its example, its settings, its error codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from broker.config import GatewaySettings
from broker.gateway._metrics import Outcome
from broker.keys import FileKeyStore
from tests.unit.gateway.conftest import make_gateway

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "gateway.md").read_text()


def test_the_documented_curl_example_event_is_accepted_as_the_doc_shows(
    agency_keys: FileKeyStore,
) -> None:
    event = json.loads((REPO / "docs" / "examples" / "tipton-event.json").read_text())
    with make_gateway(agency_keys, at=datetime(2026, 11, 23, 9, tzinfo=UTC)) as g:
        r = g.post("/v1/events", event)
    assert r.status_code == 202
    assert json.dumps(r.json(), separators=(",", ":")) in DOC


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"ACCORD_GATEWAY__([A-Z_]+)", DOC))
    documented |= {f"{m}" for m in re.findall(r"`__([A-Z_]+)`", DOC)}
    fields = {name.upper() for name in GatewaySettings.model_fields} - {"STALE_AFTER_SECONDS"}
    assert fields - documented == set()


def test_every_error_code_is_in_the_answers_table() -> None:
    table = DOC.split("## Answers", 1)[1].split("### Sending again", 1)[0]
    codes = set(re.findall(r"\| `([a-z_]+)` \|", table))
    assert {o.value for o in Outcome} - {"accepted"} == codes
