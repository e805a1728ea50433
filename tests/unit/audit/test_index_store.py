"""The index store on SQLite and PostgreSQL: only what a chain's writer signed is indexed,
idempotently; what nobody signed is refused without harm to the chain; signed evidence of
missing history stops the chain."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.errors import AuditError
from broker.governance import AuditStore, open_store, verify_store
from broker.governance._schema import MIGRATIONS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import Run, index_records, worker_chain


def _has_sql_index(store: AuditStore, name: str) -> bool:
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?"
        if store.backend == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE indexname = ?"
    )
    return bool(store._q(catalogue, (name,)))  # type: ignore[attr-defined]  # the store's own query


def test_migrations_are_versioned_and_reapplying_them_changes_nothing(
    store: AuditStore, audit_db_url: str, audit_home: object
) -> None:
    assert store.schema_version() == len(MIGRATIONS) == 7
    again = open_store(audit_db_url, home=audit_home)  # type: ignore[arg-type]
    try:
        assert again.schema_version() == 7
        assert _has_sql_index(again, "audit_refused_chain_seq")  # a chain's refusals by seq
        assert _has_sql_index(again, "audit_records_position")  # a partition's newest records
        assert again.count() == 0
    finally:
        again.close()


def test_an_index_a_newer_accord_migrated_is_refused_in_one_line_and_left_unchanged(
    store: AuditStore, audit_db_url: str, audit_home: object, run_cli: Run
) -> None:
    """A restored older image (or a rollback) must not read or write a schema it does not know."""
    store._q(  # type: ignore[attr-defined]  # the store's own query
        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
        (len(MIGRATIONS) + 1, "2027-01-01T00:00:00+00:00"),
    )
    with pytest.raises(AuditError) as err:
        open_store(audit_db_url, home=audit_home)  # type: ignore[arg-type]
    message = str(err.value)
    assert (
        f"schema version {len(MIGRATIONS) + 1}; this Accord knows {len(MIGRATIONS)}: "
        "upgrade Accord" in message
    )
    assert "\n" not in message
    code, out, cli_err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, out) == (1, "")
    assert cli_err.startswith("accord: error: the audit index at ")
    assert "upgrade Accord" in cli_err
    assert store.schema_version() == len(MIGRATIONS) + 1  # nothing written, nothing undone


def test_indexing_keeps_every_record_with_its_canonical_json(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    assert store.count() == len(indexed)
    rows = list(store.rows("worker:w1"))
    assert [r.seq for r in rows] == list(range(len(indexed)))
    assert [r.body.encode() for r in rows] == [r.to_bytes() for r in indexed]
    assert store.offsets("accord.audit") == {0: len(indexed)}
    cp = store.latest_checkpoint("worker:w1")
    assert cp is not None
    assert cp.seq == max(r.seq for r in indexed if r.kind is AuditKind.CHECKPOINT)


def test_indexing_the_same_records_again_adds_no_row(
    store: AuditStore, verifier: KeystoreAuditVerifier, indexed: list[AuditRecord]
) -> None:
    summary = index_records(store, verifier, indexed)
    assert summary.duplicates == len(indexed)
    assert summary.indexed == 0
    assert store.count() == len(indexed)


def test_a_modified_record_is_refused_and_the_writers_next_checkpoint_stops_the_chain(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    """The modified record and the one after it are refused; the signed checkpoint that
    covers the genuine ones then proves records the writer signed are missing (and 0-2,
    never covered, are refused once the partition has been read to its end)."""
    records = worker_chain(linker, keys)
    bad = records[3].model_copy(update={"party": "hub-b"})
    summary = index_records(store, verifier, [*records[:3], bad, *records[4:]])
    assert summary.refused == {"bad-hash": 1, "does-not-link": 1, "not-signed-by-writer": 3}
    assert [(b.chain, b.seq) for b in summary.breaks] == [("worker:w1", 5)]
    assert store.count() == 0  # records 0-2 were never covered by a checkpoint
    head = store.heads()["worker:w1"]
    assert head.broken_seq == 5
    assert head.error
    assert "missing" in head.error


def test_a_different_record_for_an_indexed_seq_is_refused_and_the_chain_stands(
    store: AuditStore, verifier: KeystoreAuditVerifier, indexed: list[AuditRecord]
) -> None:
    forged = indexed[2].model_copy(update={"party": "hub-b"})
    summary = index_records(store, verifier, [forged], start=len(indexed))
    assert summary.breaks == []
    assert summary.refused == {"conflicts-with-indexed": 1}
    assert store.heads()["worker:w1"].broken_seq is None
    assert store.refused_counts() == [("conflicts-with-indexed", 1)]


def test_an_undecodable_message_is_refused_and_breaks_nothing(
    store: AuditStore, verifier: KeystoreAuditVerifier, indexed: list[AuditRecord]
) -> None:
    from broker.governance._index import ChainTracker

    tracker = ChainTracker(store, verifier)
    batch = tracker.new_batch()
    tracker.offer(batch, b"worker:w1", b"{not json", 0, 99)
    assert tracker.commit(batch)
    assert tracker.summary.breaks == []
    assert store.heads()["worker:w1"].broken_seq is None
    assert store.refused_counts() == [("undecodable", 1)]
    assert store.offsets("accord.audit") == {0: 100}
    assert verify_store(store, verifier).records == len(indexed)


def test_chains_are_independent_a_break_in_one_leaves_the_other_indexed(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> None:
    a = worker_chain(linker, keys, chain="worker:a")
    b = worker_chain(linker, keys, chain="worker:b")
    bad_a = [*a[:2], a[3], a[2], *a[4:]]
    summary = index_records(
        store, verifier, [x for pair in zip(bad_a, b, strict=True) for x in pair]
    )
    assert [(x.chain, x.seq) for x in summary.breaks] == [("worker:a", 5)]
    assert len(list(store.rows("worker:b"))) == len(b)


def test_the_checkpoint_reference_only_moves_forward(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    from broker.governance._store import IndexBatch

    newest = store.latest_checkpoint("worker:w1")
    older = next(r for r in indexed if r.kind is AuditKind.CHECKPOINT)
    assert newest is not None
    assert older.seq < newest.seq
    store.apply(IndexBatch("accord.audit", checkpoints={"worker:w1": older}))
    assert store.latest_checkpoint("worker:w1") == newest


def test_verify_refuses_a_record_its_chains_writer_may_not_write_whatever_its_signature(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore
) -> None:
    """schemas/audit-chain.md §6 rule 5. The indexer never takes such a record, so rows like
    these were written into the database by someone holding the console's key (a decision
    forged on a console chain, checkpoint and all)."""
    from datetime import UTC, datetime

    from broker.audit import ChainWriter, KeystoreAuditSigner
    from broker.errors import ChainBroken
    from broker.governance._store import ChainHead, IndexBatch, IndexedRecord
    from broker.principals import Principal

    writer = ChainWriter("console:c1", clock=lambda: datetime(2026, 11, 22, tzinfo=UTC))
    forged = [writer.append(AuditKind.DECIDED, event_id="e9", party="cog-tipton",
                            data={"outcome": "shared"})]  # fmt: skip
    forged.append(writer.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    store.apply(IndexBatch(
        "accord.audit", records=[IndexedRecord(r, 0, i) for i, r in enumerate(forged)],
        heads={"console:c1": ChainHead("console:c1", forged[-1].seq, forged[-1].hash)},
        checkpoints={"console:c1": forged[-1]},
    ))  # fmt: skip
    with pytest.raises(ChainBroken, match="may not write"):
        verify_store(store, verifier)


def test_verify_checks_the_subject_links_and_reviews_the_reports_read(
    store: AuditStore, verifier: KeystoreAuditVerifier, indexed: list[AuditRecord]
) -> None:
    """A subject link deleted by hand empties a child's disclosure log; a review row added by
    hand takes an override off the review queue with no signed review behind it."""
    from broker.errors import ChainBroken

    sql: Any = store  # the SQL stores' own statement runner: as someone at the database
    rec = next(r for r in indexed if r.subject_keys)
    sql._q("DELETE FROM audit_subjects WHERE chain = ? AND seq = ?", (rec.chain, rec.seq))
    with pytest.raises(ChainBroken, match="subject link the record names is missing"):
        verify_store(store, verifier)
    for key in rec.subject_keys:
        sql._q("INSERT INTO audit_subjects (subject_key, chain, seq) VALUES (?, ?, ?)",
               (key, rec.chain, rec.seq))  # fmt: skip
    assert verify_store(store, verifier).records == len(indexed)  # restored: intact again
    override = next(r for r in indexed if r.data.get("outcome") == "shared_override")
    sql._q("INSERT INTO override_reviews (event_id, party, reviewed_by, finding, note, "
           "reviewed_at, chain, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           (override.event_id, override.party, "nobody", "justified", "",
            "2026-11-23T00:00:00.000000Z", rec.chain, rec.seq))  # fmt: skip
    with pytest.raises(ChainBroken, match="review row no record holds"):
        verify_store(store, verifier)


def test_a_review_written_with_a_note_keeps_it_through_the_findings_migration(
    store: AuditStore, audit_db_url: str, audit_home: Path, verifier: KeystoreAuditVerifier,
    keys: FileKeyStore, indexed: list[AuditRecord],
) -> None:  # fmt: skip
    """The log is kept forever, so a review from before findings (a free-text note) is still
    filed as the log holds it, and verifies, in an index migrated to findings (4)."""
    override = next(r for r in indexed if r.data.get("outcome") == "shared_override")
    writer = ChainWriter("console:old", clock=lambda: override.at + timedelta(days=1))
    decision = {"chain": override.chain, "seq": override.seq, "hash": override.hash}
    data = {"reviewed_by": "ig-jo", "note": "ok", "decision": decision}
    legacy = writer.append(AuditKind.OVERRIDE_REVIEWED, event_id=override.event_id,
                           party=override.party, subject_keys=override.subject_keys,
                           data=data)  # fmt: skip
    signer = KeystoreAuditSigner(keys, Principal.CONSOLE)
    index_records(store, verifier, [legacy, writer.checkpoint(signer)], start=100)
    for sql in (  # back to the index as migration 3 left it
        "ALTER TABLE override_reviews DROP COLUMN finding",
        "ALTER TABLE override_reviews DROP COLUMN reference",
        "DROP INDEX audit_refused_chain_seq",
        "DROP TABLE verify_runs",
        "DROP INDEX audit_records_position",
        "DELETE FROM schema_version WHERE version >= 4",
    ):
        with store._tx():  # type: ignore[attr-defined]  # the store's own transaction
            store._q(sql)  # type: ignore[attr-defined]
    store.close()
    migrated = open_store(audit_db_url, home=audit_home)
    try:
        assert migrated.schema_version() == 7
        assert _has_sql_index(migrated, "audit_refused_chain_seq")
        assert _has_sql_index(migrated, "audit_records_position")
        review = migrated.review_of(override.event_id or "", override.party or "")
        assert review is not None
        assert (review.finding, review.reference, review.note) == ("", "", "ok")
        assert verify_store(migrated, verifier).records == len(indexed) + 2
    finally:
        migrated.close()
