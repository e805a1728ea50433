"""How the worker names a record's key, placement and id problems (schemas/envelope.md,
"Producing to Kafka"): each gets a reason of its own, so a sender can tell what to fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import AUDIT, ingress
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
