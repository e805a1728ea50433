"""Verifying the index while the indexer writes: one snapshot, so no false alarm (both backends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from broker.audit import AuditStore, KeystoreAuditVerifier, StoredRow, open_store, verify_store
from broker.keys import FileKeyStore
from broker.pipeline import Linker
from tests.unit.audit.conftest import index_records, worker_chain


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
    store: AuditStore, audit_db_url: str, audit_home: Path, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    records = worker_chain(linker, keys)
    # Cut just before the chain's second checkpoint, which then arrives mid-read: a reader
    # without one snapshot sees rows, heads and the checkpoint reference disagree.
    cut = max(i for i, r in enumerate(records) if r.kind == "checkpoint") - 1
    assert index_records(store, verifier, records[:cut]).breaks == []
    reader = open_store(audit_db_url, home=audit_home)
    try:

        def indexer_catches_up() -> None:
            if store.count() == cut:
                summary = index_records(store, verifier, records[cut : cut + 2], start=cut)
                assert summary.indexed == 2

        racing = IndexerCommitsMidRead(reader, indexer_catches_up)
        summary = verify_store(racing, verifier)  # type: ignore[arg-type]  # a proxy of one
        assert summary.records == cut
        assert store.count() == cut + 2  # the indexer did commit while verification read
        assert verify_store(reader, verifier).records == cut + 2
    finally:
        reader.close()
