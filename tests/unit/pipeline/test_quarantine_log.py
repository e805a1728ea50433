"""The worker's ``quarantined`` and ``event_invalid`` log lines say where the record is and
which event it was (the id the operator names to the agency that must send it again), and
nothing else of the record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditKind, AuditRecord
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.topics import AUDIT, ingress
from tests.unit.pipeline.conftest import AT
from tests.unit.pipeline.test_processor import CHILD_NHS, incident, seal_as

WMP = ingress("wmp")
WHERE = {"topic": WMP, "partition": 3, "offset": 41}
#: Every field a ``quarantined`` line may carry: structlog's, where, why, and the event id.
QUARANTINED_FIELDS = {"event", "log_level", "reason", "stage", *WHERE,
                      "event_id", "event_id_authenticated"}  # fmt: skip


def _logged(processor: Processor, value: bytes, headers: list[tuple[str, bytes]]) -> list[Any]:
    with capture_logs() as logs:
        processor.handle(WMP, 3, 41, value, headers, at=AT)
    return logs


def _line(logs: list[Any], event: str) -> dict[str, Any]:
    [line] = [e for e in logs if e["event"] == event]
    return line  # type: ignore[no-any-return]


def _nothing_of_the_record(logs: list[Any], event: dict[str, Any]) -> None:
    said = repr(logs)
    for value in (CHILD_NHS, "Amy", "Hollis", "Tipton", event["reference"]):
        assert value not in said


def test_a_record_quarantined_after_opening_is_logged_with_its_authenticated_event_id(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident(need_level=9)  # invalid: quarantined by validate, its envelope opened
    logs = _logged(make_processor(), *seal_as(pipeline_keys, "wmp", event, topic=WMP))
    line = _line(logs, "quarantined")
    assert line == {**WHERE, "event": "quarantined", "log_level": "warning",
                    "reason": "invalid-event", "stage": "validate",
                    "event_id": event["event_id"], "event_id_authenticated": True}  # fmt: skip
    _nothing_of_the_record(logs, event)


def test_a_record_that_did_not_open_is_logged_with_its_header_s_id_said_unauthenticated(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    value, _ = seal_as(pipeline_keys, "wmp", event, topic=WMP)
    logs = _logged(make_processor(), value, [])  # no DEK bundle: key-rejected
    line = _line(logs, "quarantined")
    assert (line["reason"], line["event_id"]) == ("key-rejected", event["event_id"])
    assert line["event_id_authenticated"] is False
    assert line.keys() == QUARANTINED_FIELDS
    _nothing_of_the_record(logs, event)


@pytest.mark.parametrize(
    "event_id",
    ["Amy.Hollis.2019-03-02", "9E938EEA-5466-490B-95F5-D19A2F409373", "9997877896"],
)
def test_an_envelope_id_that_is_not_a_canonical_uuid_is_left_out(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, event_id: str
) -> None:
    """The id is the sender's to choose: any other text could spell a name."""
    event = incident()
    record = seal_as(pipeline_keys, "wmp", event, topic=WMP, event_id=event_id)
    logs = _logged(make_processor(), *record)
    line = _line(logs, "quarantined")  # id-mismatch: the payload's id is another
    assert line.keys() == QUARANTINED_FIELDS - {"event_id", "event_id_authenticated"}
    assert event_id not in repr(logs)
    value, _ = record
    logs = _logged(make_processor(), value, [])  # and read unauthenticated from the header
    assert "event_id" not in _line(logs, "quarantined")
    assert event_id not in repr(logs)


def test_a_record_with_no_readable_envelope_is_logged_without_an_id(
    make_processor: Callable[..., Processor],
) -> None:
    logs = _logged(make_processor(), b"Amy Hollis 9997877896", [])
    line = _line(logs, "quarantined")
    assert line.keys() == QUARANTINED_FIELDS - {"event_id", "event_id_authenticated"}
    assert "Amy" not in repr(logs)


def test_event_invalid_names_the_partition_and_only_field_paths(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident(need_level=9)
    logs = _logged(make_processor(), *seal_as(pipeline_keys, "wmp", event, topic=WMP))
    line = _line(logs, "event_invalid")
    assert line == {**WHERE, "event": "event_invalid", "log_level": "info",
                    "fields": ["need_level"]}  # fmt: skip
    _nothing_of_the_record(logs, event)


def test_a_replay_is_logged_with_its_id_said_authenticated(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Review s43r4: a replay is refused after the AEAD verified its header, so an agency's
    genuine re-send of an event already decided must not read as possibly forged."""
    processor, event = make_processor(), incident()
    value, headers = seal_as(pipeline_keys, "wmp", event, topic=WMP)
    processor.handle(WMP, 3, 40, value, headers, at=AT)
    line = _line(_logged(processor, value, headers), "quarantined")
    assert (line["reason"], line["event_id"]) == ("replay", event["event_id"])
    assert line["event_id_authenticated"] is True


def _quarantine_audits(out: list[OutRecord]) -> list[AuditRecord]:
    records = [AuditRecord.model_validate_json(r.value) for r in out if r.topic == AUDIT]
    return [r for r in records if r.kind is AuditKind.QUARANTINED]


def test_a_replay_s_quarantine_audit_record_names_its_event(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """A walkthrough: only the worker's log named a replayed event; the audit record of the
    quarantine had no id. A replay is refused after its header verified, so the id is the
    sender's own (a canonical UUID, nothing about a person)."""
    processor, event = make_processor(), incident()
    value, headers = seal_as(pipeline_keys, "wmp", event, topic=WMP)
    processor.handle(WMP, 3, 40, value, headers, at=AT)
    [audit] = _quarantine_audits(processor.handle(WMP, 3, 41, value, headers, at=AT))
    assert (audit.data["reason"], audit.event_id) == ("replay", event["event_id"])


def test_a_quarantine_audit_record_never_names_an_unauthenticated_id(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """A record that did not open names its header's id in the log (said unauthenticated),
    never in the append-only audit log: anyone may have written it."""
    value, _ = seal_as(pipeline_keys, "wmp", incident(), topic=WMP)
    [audit] = _quarantine_audits(make_processor().handle(WMP, 3, 41, value, [], at=AT))
    assert (audit.data["reason"], audit.event_id) == ("key-rejected", None)
