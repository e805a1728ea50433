"""Reading the index while another indexer writes: snapshots, so no false alarm (both backends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.governance import AuditStore, open_store, verify_store
from broker.governance._index import ChainTracker
from broker.governance._store import StoredRow
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import index_records, worker_chain


@pytest.fixture
def reader(audit_db_url: str, audit_home: Path) -> Iterator[AuditStore]:
    """A second connection to the same database, as another process would hold."""
    other = open_store(audit_db_url, home=audit_home)
    yield other
    other.close()


class IndexerCommitsMidRead:
    """The store verification reads, with the indexer committing between its reads."""

    def __init__(self, store: AuditStore, commit: Callable[[], None]) -> None:
        self._store = store
        self._commit = commit

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def rows(self, chain: str) -> Iterator[StoredRow]:
        self._commit()
        return self._store.rows(chain)


def test_records_and_a_checkpoint_indexed_during_verification_are_not_called_tampering(
    store: AuditStore, reader: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    records = worker_chain(linker, keys)
    # Cut just before the chain's second checkpoint, which then arrives mid-read: a reader
    # without one snapshot sees rows, heads and the checkpoint reference disagree.
    cut = max(i for i, r in enumerate(records) if r.kind == "checkpoint") - 1
    assert index_records(store, verifier, records[:cut]).breaks == []

    def indexer_catches_up() -> None:
        if store.count() == cut:
            summary = index_records(store, verifier, records[cut : cut + 2], start=cut)
            assert summary.indexed == 2

    racing = IndexerCommitsMidRead(reader, indexer_catches_up)
    summary = verify_store(racing, verifier)  # type: ignore[arg-type]  # a proxy of one
    assert summary.records == cut
    assert store.count() == cut + 2  # the indexer did commit while verification read
    assert verify_store(reader, verifier).records == cut + 2


def test_a_second_indexer_on_the_same_database_never_commits_a_stale_batch(
    store: AuditStore, reader: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """A console's indexer and ``review-override``'s both index: the later one reloads."""
    records = worker_chain(linker, keys)
    slow = ChainTracker(store, verifier)
    fast = ChainTracker(reader, verifier)
    offer_all(fast, records[:14], start=0)  # up to the second checkpoint (seq 13)
    stale = slow.new_batch()
    for i, rec in enumerate(records[:6]):
        slow.offer(stale, rec.chain.encode(), rec.to_bytes(), 0, i)
    assert not slow.commit(stale)
    assert slow.offsets == {0: 14}  # reloaded: it seeks to where the other got
    assert slow.heads["worker:w1"].seq == 13
    assert slow.summary.indexed == 0  # the dropped batch is not counted
    assert store.heads()["worker:w1"].seq == 13  # not moved back to 5
    offer_all(slow, records[14:], start=14)
    assert store.heads()["worker:w1"].seq == len(records) - 1
    assert slow.summary.breaks == fast.summary.breaks == []
    assert verify_store(store, verifier).records == len(records)


def test_an_indexer_starts_from_heads_and_offsets_read_together(
    store: AuditStore, reader: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """Heads read before another indexer's commit and offsets after it would fake a gap."""
    records = worker_chain(linker, keys)  # checkpoints at seq 5, 13 and the last
    assert index_records(store, verifier, records[:6]).breaks == []

    def other_indexer_commits() -> None:
        if store.count() == 6:
            assert index_records(store, verifier, records[6:14], start=6).breaks == []

    racing = IndexerCommitsMidOffsets(reader, other_indexer_commits)
    tracker = ChainTracker(racing, verifier)  # type: ignore[arg-type]  # a proxy of one
    assert store.count() == 14  # the other indexer did commit while this one started
    assert tracker.offsets == {0: 6}
    assert tracker.heads["worker:w1"].seq == 5
    offer_all(tracker, records[6:], start=6)  # it is behind, so it reloads, then goes on
    assert tracker.summary.breaks == []
    assert store.heads()["worker:w1"] == reader.heads()["worker:w1"]
    assert reader.heads()["worker:w1"].broken_seq is None


class IndexerCommitsMidOffsets(IndexerCommitsMidRead):
    def rows(self, chain: str) -> Iterator[StoredRow]:
        return self._store.rows(chain)

    def offsets(self, topic: str) -> dict[int, int]:
        self._commit()
        return self._store.offsets(topic)


def offer_all(tracker: ChainTracker, records: list[AuditRecord], *, start: int) -> None:
    """Offer records from ``start`` as the indexer would, re-reading after a reload."""
    while True:
        base = tracker.offsets.get(0, 0)
        batch = tracker.new_batch()
        for i, rec in enumerate(records[base - start :], start=base):
            tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
        if tracker.commit(batch):
            return
