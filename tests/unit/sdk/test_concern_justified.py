"""A safeguarding concern flagged with an empty justification is a valid event (the brief
decides it: no override), published, and the sender is told it will not override consent."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.events import parse_event
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import GoodRow, Publisher, read_export
from broker.synthetic import SyntheticFamilies

_OCCURRED = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
_NOW = _OCCURRED + timedelta(hours=1)
_WARNING = (
    "safeguarding.concern",
    "is true but its justification is empty: it will not override consent "
    "(docs/policy-language.md)",
)


def _event(justification: str | None, *, concern: bool = True, seed: int = 3) -> dict[str, Any]:
    family = SyntheticFamilies(seed=seed, today=date(2026, 11, 22))
    event = family.event("police.domestic_incident", "wmp", occurred_at=_OCCURRED)
    event = json.loads(json.dumps(event, default=str))
    event["safeguarding"] = {"concern": concern, "justification": justification}
    return event


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"], kem=KemSuite.X25519)
    kafka = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT")
    envelope = EnvelopeSettings(kem=KemSuite.X25519)
    return Publisher("wmp", keys, kafka, envelope=envelope, clock=lambda: _NOW)


@pytest.mark.parametrize("justification", ["", "   "])
def test_a_csv_row_with_a_concern_and_no_justification_is_a_good_row(
    tmp_path: Path, justification: str
) -> None:
    event = _event(None)
    row = {
        "event_id": event["event_id"], "type": event["type"], "sender": event["sender"],
        "occurred_at": event["occurred_at"], "need_level": str(event["need_level"]),
        "safeguarding_concern": "true", "safeguarding_justification": justification,
        **{k: str(v) for k, v in event["subjects"][0].items()},
    }  # fmt: skip
    path = tmp_path / "x.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(row))
        writer.writeheader()
        writer.writerow(row)
    [got] = list(read_export(path, lambda d: parse_event(d, now=_NOW)))
    assert isinstance(got, GoodRow)
    assert got.event.safeguarding.concern
    assert Publisher.warnings(got.event) == [_WARNING]


@pytest.mark.parametrize("justification", [None, "", " \t", "\u200b", "\ufeff"])
def test_validate_accepts_an_unjustified_concern_and_warnings_name_the_field_only(
    publisher: Publisher, justification: str | None
) -> None:
    event = publisher.validate(_event(justification))
    assert publisher.warnings(event) == [_WARNING]


@pytest.mark.parametrize(
    ("justification", "concern"), [("Asking would put her at risk.", True), (None, False)]
)
def test_a_justified_concern_or_none_at_all_has_no_warning(
    publisher: Publisher, justification: str | None, concern: bool
) -> None:
    event = publisher.validate(_event(justification, concern=concern))
    assert publisher.warnings(event) == []


def test_an_unjustified_concern_at_need_level_4_has_no_warning(publisher: Publisher) -> None:
    """At need level 4 the override applies with or without the concern: telling the sender
    it will not override would be wrong."""
    event = publisher.validate({**_event("\u200b"), "need_level": 4})
    assert publisher.warnings(event) == []
    assert Publisher.warnings(event.safeguarding, need_level=4) == []
    assert Publisher.warnings(event.safeguarding, need_level=3) == [_WARNING]


async def test_publishing_an_unjustified_concern_logs_a_warning_with_the_event_id_only(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Meta:
        topic, partition, offset = "accord.ingress.wmp", 0, 7

    async def sent(_topic: str, records: list[Any]) -> list[_Meta]:
        return [_Meta() for _ in records]

    monkeypatch.setattr(publisher, "_send", sent)
    unjustified, justified = _event("  "), _event("Asking would put her at risk.", seed=4)
    with capture_logs() as logs:
        await publisher.publish_many([unjustified, justified])
    warned = [e for e in logs if e["event"] == "event_concern_unjustified"]
    assert warned == [
        {"event": "event_concern_unjustified", "event_id": unjustified["event_id"],
         "log_level": "warning"}
    ]  # fmt: skip
