"""How the worker names a record's key, placement and id problems (schemas/envelope.md,
"Producing to Kafka"): each gets a reason of its own, so a sender can tell what to fix."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import AUDIT, CONSENT, SCHEMA_CONSENT, ingress
from tests.unit.pipeline.conftest import AT
from tests.unit.pipeline.test_processor import incident, seal_as

PARTITIONS = 3


def _outcome(
    processor: Processor,
    keys: FileKeyStore,
    *,
    key: bytes | str | None,
    partition: int | None = None,
    event: dict[str, Any] | None = None,
) -> list[str]:
    """What became of a genuine incident from wmp: its audit kinds, or its quarantine reason.

    ``key="id"`` keys it by its event id; ``partition`` None puts it where that key hashes to.
    """
    event = event or incident()
    own = event["event_id"].encode("ascii")
    value, headers = seal_as(keys, "wmp", event, topic=ingress("wmp"))
    if partition is None:
        partition = partition_for(own, list(range(PARTITIONS)))
    out = processor.handle(
        ingress("wmp"), partition, 1, value, headers, at=AT,
        key=own if key == "id" else key, partitions=PARTITIONS,
    )  # fmt: skip
    audits = [AuditRecord.model_validate_json(r.value) for r in out if r.topic == AUDIT]
    quarantined = [a.data["reason"] for a in audits if a.kind is AuditKind.QUARANTINED]
    return quarantined or sorted({a.kind.value for a in audits})


@pytest.mark.parametrize(
    ("key", "reason"),
    [(None, "unkeyed"), (b"", "unkeyed"), (b"not-the-event-id", "wrong-partition")],
)
def test_a_record_without_a_key_is_unkeyed_and_one_keyed_otherwise_is_wrong_partition(
    make_processor: Callable[..., Processor],
    pipeline_keys: FileKeyStore,
    key: bytes | None,
    reason: str,
) -> None:
    assert _outcome(make_processor(), pipeline_keys, key=key) == [reason]


def test_a_record_keyed_by_its_id_on_another_partition_is_wrong_partition(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    outcomes = [
        _outcome(make_processor(), pipeline_keys, key="id", partition=p, event=event)
        for p in range(PARTITIONS)
    ]
    # Right on one partition of three: decided there, misplaced on the other two.
    assert sorted(o == ["wrong-partition"] for o in outcomes) == [False, True, True]


def test_a_record_keyed_by_its_id_on_the_partition_it_hashes_to_is_decided(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    assert "decided" in _outcome(make_processor(), pipeline_keys, key="id")


def _quarantined(processor: Processor, keys: FileKeyStore, event: dict[str, Any], eid: str) -> str:
    """The reason a contact event sealed under envelope id ``eid`` is quarantined for."""
    value, headers = seal_as(keys, "wmp", event, topic=ingress("wmp"), event_id=eid)
    out = processor.handle(ingress("wmp"), 0, 1, value, headers, at=AT)
    audits = [AuditRecord.model_validate_json(r.value) for r in out if r.topic == AUDIT]
    [reason] = [a.data["reason"] for a in audits if a.kind is AuditKind.QUARANTINED]
    return str(reason)


def test_an_envelope_id_other_than_the_payloads_is_id_mismatch_not_sender_mismatch(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    other = str(uuid.uuid4())
    assert _quarantined(make_processor(), pipeline_keys, event, other) == "id-mismatch"


def test_the_same_uuid_spelt_in_capitals_in_the_envelope_only_is_id_mismatch(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Compared in one spelling: the envelope's id is what the replay guard keeps, so a
    capitalised twin must not pass as the payload's id (one event, two spendable ids)."""
    event = incident()
    shouted = event["event_id"].upper()
    assert _quarantined(make_processor(), pipeline_keys, event, shouted) == "id-mismatch"


def test_a_capitalised_uuid_in_envelope_and_payload_alike_is_an_invalid_event_not_a_mismatch(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The sender is who it says: the payload's id is what fails (the schema's pattern)."""
    shouted = str(uuid.uuid4()).upper()
    event = incident(event_id=shouted)
    assert _quarantined(make_processor(), pipeline_keys, event, shouted) == "invalid-event"


def test_a_payload_naming_another_sender_is_still_sender_mismatch(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    event = incident(sender="swbh")
    got = _quarantined(make_processor(), pipeline_keys, event, event["event_id"])
    assert got == "sender-mismatch"


def test_a_consent_record_under_a_capitalised_uuid_is_invalid_consent(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Else the same record sent under both spellings would be filed, and audited, twice."""
    record = {"subject": {"nhs_number": "9997877896"}, "state": "given", "purposes": ["*"],
              "recipients": ["*"], "recorded_by": "sandwell-coord",
              "recorded_at": "2026-10-01T09:00:00Z"}  # fmt: skip
    shouted = str(uuid.uuid4()).upper()
    value, headers = seal_as(pipeline_keys, "sandwell-coord", record, topic=CONSENT,
                             schema=SCHEMA_CONSENT, event_id=shouted)  # fmt: skip
    out = make_processor().handle(CONSENT, 0, 1, value, headers, at=AT)
    audits = [AuditRecord.model_validate_json(r.value) for r in out if r.topic == AUDIT]
    assert [a.data["reason"] for a in audits if a.kind is AuditKind.QUARANTINED] == [
        "invalid-consent"
    ]
