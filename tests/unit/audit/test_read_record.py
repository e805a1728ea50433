"""Accord reads a record exactly as schemas/audit-chain.md §2 types it, so that it never vouches
for a record a strict verifier, working from the schema alone, would call invalid."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditVerifier, read_record
from broker.errors import ChainBroken
from broker.governance import AuditStore
from broker.governance._index import ChainTracker
from broker.governance._topic import TopicMessage, signed_chains
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import worker_chain

_AT = datetime(2026, 12, 5, 4, 30, 1, 250000, tzinfo=UTC)


def _written(data: dict[str, Any]) -> bytes:
    writer = ChainWriter("worker:w1", clock=lambda: _AT)
    return writer.append_encoded(
        AuditKind.DECIDED, event_id="e-1", party="school-1", subject_keys=["sk-1"], data=data
    )


def _respelt(raw: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """``raw`` respelt by ``change``, its hash made good for a lenient reader where it can be."""
    body = json.loads(raw)
    change(body)
    out = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    try:
        body["hash"] = AuditRecord.model_validate_json(out).computed_hash()
    except ValueError:  # not even a lenient reader takes it
        return out
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(-(2.0**53) + 1, 2.0**53 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), _json, max_size=4))
def test_every_record_the_writer_writes_reads_back_as_itself(data: dict[str, Any]) -> None:
    raw = _written(data)
    rec = read_record(raw)
    assert rec.to_bytes() == raw
    assert rec.computed_hash() == rec.hash


def _seq_as_string(b: dict[str, Any]) -> None:
    b["seq"] = str(b["seq"])


def _seq_as_float(b: dict[str, Any]) -> None:
    b["seq"] = float(b["seq"])


def _at_with_offset(b: dict[str, Any]) -> None:
    b["at"] = b["at"].replace("Z", "+00:00")


def _at_in_another_zone(b: dict[str, Any]) -> None:
    b["at"] = "2026-12-05T05:30:01.250000+01:00"


def _at_with_a_space(b: dict[str, Any]) -> None:
    b["at"] = b["at"].replace("T", " ")


def _keys_as_a_string(b: dict[str, Any]) -> None:
    b["subject_keys"] = "sk-1"


RESPELLINGS = [
    _seq_as_string,
    _seq_as_float,
    _at_with_offset,
    _at_in_another_zone,
    _at_with_a_space,
    _keys_as_a_string,
]


@pytest.mark.parametrize("change", RESPELLINGS, ids=lambda f: f.__name__.strip("_"))
def test_a_record_respelt_outside_its_schema_is_not_a_record(
    change: Callable[[dict[str, Any]], None],
) -> None:
    raw = _respelt(_written({"outcome": "shared"}), change)
    if change is not _keys_as_a_string:
        # Read leniently, the respelt record still carries a matching hash: the hole this shuts.
        lenient = AuditRecord.model_validate_json(raw)
        assert lenient.computed_hash() == lenient.hash
    with pytest.raises(ValueError, match=r".+"):
        read_record(raw)


def test_a_member_given_twice_is_not_a_record() -> None:
    raw = _written({"outcome": "shared"})
    twice = raw.replace(b'"seq":0', b'"seq":7,"seq":0')
    assert AuditRecord.model_validate_json(twice).seq == 0  # the lenient reader takes the last
    with pytest.raises(ValueError, match="twice"):
        read_record(twice)


def _chain_with_respelt(linker: Linker, keys: FileKeyStore) -> tuple[list[AuditRecord], bytes]:
    records = worker_chain(linker, keys)
    return records, _respelt(records[2].to_bytes(), _seq_as_string)


def test_verify_from_the_topic_does_not_take_a_respelt_record_for_the_signed_one(
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    records, respelt = _chain_with_respelt(linker, keys)
    assert AuditRecord.model_validate_json(respelt) == records[2]  # same hash, read leniently
    key = records[0].chain.encode()
    own = partition_for(key, [0, 1, 2, 3])
    values = [r.to_bytes() for r in records]
    values[2] = respelt
    messages = [TopicMessage(key, v, own, i) for i, v in enumerate(values)]
    with pytest.raises(ChainBroken, match="signed history is missing"):
        signed_chains(messages, verifier, partitions=4)


def test_the_indexer_refuses_a_respelt_record_and_indexes_no_such_row(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    records, respelt = _chain_with_respelt(linker, keys)
    key = records[0].chain.encode()
    tracker = ChainTracker(store, verifier)
    batch = tracker.new_batch()
    tracker.offer(batch, key, respelt, 0, 0)
    tracker.commit(batch)
    assert store.refused_counts() == [("undecodable", 1)]
    assert records[0].chain not in store.heads()
