"""A message away from its chain's place (another key, another partition) belongs to no
chain: replaying a genuine checkpoint elsewhere cannot break the chain it came from
(schemas/audit-chain.md §1), on the topic or in the index."""

from __future__ import annotations

import pytest

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.governance import AuditStore, signed_chains, verify_store
from broker.governance._index import ChainTracker
from broker.governance._topic import TopicMessage
from broker.kafka import partition_for
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import worker_chain

PARTITIONS = 4


def _placed(linker: Linker, keys: FileKeyStore) -> tuple[list[AuditRecord], bytes, int, int]:
    """A worker's chain, its key, its own partition, and another that is read before it."""
    records = worker_chain(linker, keys)
    key = records[0].chain.encode()
    own = partition_for(key, list(range(PARTITIONS)))
    return records, key, own, 0 if own else 1


@pytest.mark.parametrize("copy", ["another partition", "another key"])
def test_a_checkpoint_replayed_away_from_its_chain_is_set_aside_on_the_topic(
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore, copy: str
) -> None:
    records, key, own, other = _placed(linker, keys)
    replay = (TopicMessage(key, records[-1].to_bytes(), other, 0) if copy == "another partition"
              else TopicMessage(b"not-the-chain", records[-1].to_bytes(), own, 0))  # fmt: skip
    genuine = [TopicMessage(key, r.to_bytes(), own, i + 1) for i, r in enumerate(records)]
    messages = sorted([replay, *genuine], key=lambda m: (m.partition, m.offset))
    topic = signed_chains(messages, verifier, partitions=PARTITIONS)
    assert topic.chains[records[0].chain] == records
    reason = "wrong-partition" if copy == "another partition" else "wrong-key"
    assert topic.refused == {reason: 1}


def test_a_checkpoint_replayed_on_another_partition_breaks_no_indexed_chain(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    records, key, own, other = _placed(linker, keys)
    tracker = ChainTracker(store, verifier, partitions=PARTITIONS)
    batch = tracker.new_batch()
    tracker.offer(batch, key, records[-1].to_bytes(), other, 0)  # a fresh index reads it first
    for i, r in enumerate(records):
        tracker.offer(batch, key, r.to_bytes(), own, i)
    assert tracker.commit(batch)
    assert tracker.summary.breaks == []
    assert store.heads()[records[0].chain].broken_seq is None
    assert store.refused_counts() == [("wrong-partition", 1)]
    assert verify_store(store, verifier).records == len(records)
