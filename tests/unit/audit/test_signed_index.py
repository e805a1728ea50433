"""The index takes only what a chain's writer signed: forgeries are refused, genuine history
is indexed exactly, and nothing waits longer than the writer's next checkpoint (both backends)."""

from __future__ import annotations

import base64
from datetime import timedelta

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore, disclosure_log, pending_overrides, verify_store
from broker.governance._index import ChainTracker
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, decision, index_records, worker_chain


def _forger(after: AuditRecord, chain: str | None = None) -> ChainWriter:
    """Someone with write access to the topic: the head's hash is public, the key is not."""
    return ChainWriter(chain or after.chain, clock=lambda: T0 + timedelta(days=1),
                       next_seq=after.seq + 1, prev_hash=after.hash)  # fmt: skip


def test_a_record_forged_onto_a_chain_is_refused_once_the_writer_signs(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    records = worker_chain(linker, keys)
    head = records[5]  # the first checkpoint
    forged = _forger(head).append(
        AuditKind.DECIDED, event_id="e1", party="hub-x",
        subject_keys=[linker.from_nhs_number(CHILD_NHS)], data=decision("shared"),
    )  # fmt: skip
    summary = index_records(store, verifier, [*records[:6], forged, *records[6:]])
    assert summary.breaks == []
    assert summary.refused == {"not-signed-by-writer": 1}
    assert [r.hash for r in store.rows("worker:w1")] == [r.hash for r in records]
    parties = {e.recipient for e in disclosure_log(store, linker.from_nhs_number(CHILD_NHS))}
    assert "hub-x" not in parties  # a forged decision never reaches a child's log
    assert verify_store(store, verifier).records == len(records)


def test_a_forged_chain_and_a_forged_review_are_refused(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    """A one-record chain of a stranger, a review on a worker's chain, and a console chain
    whose checkpoint is signed with the worker's key: none empties the override queue. The
    forged checkpoint vouches for nothing: it and the review wait, and are refused once the
    partition has been read to its end."""
    records = worker_chain(linker, keys)
    index_records(store, verifier, records)
    assert len(pending_overrides(store)) == 1
    override = pending_overrides(store)[0]

    def review(w: ChainWriter) -> AuditRecord:
        data = {"reviewed_by": "x", "finding": "justified"}
        return w.append(AuditKind.OVERRIDE_REVIEWED, event_id=override.event_id,
                        party=override.recipient, data=data)  # fmt: skip

    stranger = ChainWriter("mallory:1", clock=lambda: T0)
    on_worker = _forger(records[-1])
    console = ChainWriter("console:forged", clock=lambda: T0)
    wrong_key = KeystoreAuditSigner(keys, Principal.WORKER)
    # A console chain with a checkpoint signed by a key that is not the console's.
    console_records = [review(console)]
    console_records.append(
        console.append(AuditKind.CHECKPOINT, data={
            "covers_seq": 0, "covers_hash": console_records[0].hash, "key_id": wrong_key.key_id,
            "signature": base64.b64encode(wrong_key.sign(b"x")).decode(),
        })
    )  # fmt: skip
    summary = index_records(
        store,
        verifier,
        [review(stranger), review(on_worker), *console_records],
        start=len(records),
    )
    assert summary.refused == {
        "foreign-chain": 1, "kind-not-allowed": 1, "not-signed-by-writer": 2
    }  # fmt: skip
    assert summary.breaks == []
    assert len(pending_overrides(store)) == 1  # still awaiting a genuine review
    assert "mallory:1" not in store.chains()
    assert "console:forged" not in store.chains()  # what waited is not indexed


def test_records_wait_for_their_checkpoint_and_the_stored_offset_never_passes_them(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    records = worker_chain(linker, keys)  # checkpoints at seq 5 and 13, and the last
    tracker = ChainTracker(store, verifier)
    batch = tracker.new_batch()
    for i, rec in enumerate(records[:9]):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
    assert tracker.commit(batch, ended={})  # mid-stream: the partition goes on
    assert store.count() == 6  # up to the first checkpoint; 6-8 wait
    assert store.offsets("accord.audit") == {0: 6}  # an indexer restarting reads 6-8 again
    assert tracker.waiting == 3
    restarted = index_records(store, verifier, records[6:], start=6)
    assert restarted.breaks == []
    assert store.count() == len(records)
    assert store.offsets("accord.audit") == {0: len(records)}


def test_the_console_chain_is_taken_only_with_the_console_s_own_signature(
    store: AuditStore, verifier: Verifier, keys: FileKeyStore
) -> None:
    console = ChainWriter("console:host", clock=lambda: T0)
    rec = console.append(AuditKind.CONSOLE_QUERY, data={"by": "ig.jo", "page": "dashboard"})
    cp = console.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE))
    summary = index_records(store, verifier, [rec, cp])
    assert (summary.indexed, summary.refused) == (2, {})
    assert store.chains() == ["console:host"]
