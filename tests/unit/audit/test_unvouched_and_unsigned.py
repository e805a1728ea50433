"""A checkpoint that does not verify vouches for nothing but breaks nothing a later valid one
covers (a key rotated out, then revoked); a record nobody ever signs is refused once its
partition has been read to its end, rather than holding the index back for ever."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner, verify_chain
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.config import KemSuite
from broker.envelope import KeyPurpose
from broker.errors import ChainBroken
from broker.governance import AuditStore, Indexer, signed_chains, verify_records, verify_store
from broker.governance._index import ChainTracker
from broker.governance._topic import TopicMessage
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import T0, index_records, worker_chain
from tests.unit.audit.conftest import fetched as _fetched

CHAIN = "worker:w1"


def _rotated_then_revoked(keys: FileKeyStore) -> list[AuditRecord]:
    """Records 0-1 and checkpoint 2 by key K1; rotate; record 3 and checkpoint 4 by K2; then
    K1 is revoked (what an operator does on suspecting it compromised)."""
    at = iter(range(100))
    w = ChainWriter(CHAIN, clock=lambda: T0 + timedelta(minutes=next(at)))
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    out = [
        w.append(AuditKind.POLICY_LOADED, data={"version": "v1"}),
        w.append(AuditKind.RECEIVED, event_id="e1", party="wmp"),
        w.checkpoint(signer),
    ]
    keys.rotate("worker", purposes=[KeyPurpose.SIGN], kem=KemSuite.X25519)
    out += [w.append(AuditKind.RECEIVED, event_id="e2", party="wmp"), w.checkpoint(signer)]
    assert out[2].data["key_id"] != out[4].data["key_id"]
    keys.revoke(str(out[2].data["key_id"]))
    return out


def _messages(records: list[AuditRecord]) -> list[TopicMessage]:
    return [TopicMessage(r.chain.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records)]


# -- a key rotated out, then revoked ---------------------------------------------------------


def test_verify_from_the_topic_takes_a_chain_whose_revoked_checkpoint_a_later_one_covers(
    keys: FileKeyStore, verifier: Verifier
) -> None:
    records = _rotated_then_revoked(keys)
    topic = signed_chains(_messages(records), verifier)
    assert [r.hash for r in topic.chains[CHAIN]] == [r.hash for r in records]
    assert (dict(topic.refused), topic.unsigned) == ({}, 0)
    summary = verify_records(topic, verifier)
    assert (summary.records, summary.signed_chains, summary.unvouched) == (5, 1, 1)
    assert "1 checkpoint vouches for nothing" in summary.line()


def test_an_index_rebuilt_after_the_revocation_takes_the_whole_chain_and_verifies(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    records = _rotated_then_revoked(keys)
    summary = index_records(store, verifier, records)
    assert (summary.indexed, dict(summary.refused), summary.breaks) == (5, {}, [])
    head = store.heads()[CHAIN]
    assert (head.seq, head.broken_seq) == (4, None)
    assert store.latest_checkpoint(CHAIN) == records[4]  # the reference is the valid one
    checked = verify_store(store, verifier)  # not tampering: a checkpoint that vouches for nothing
    assert (checked.records, checked.signed_chains, checked.unvouched) == (5, 1, 1)


def test_verify_chain_names_the_revoked_checkpoint_only_when_nothing_later_covers_it(
    keys: FileKeyStore, verifier: Verifier
) -> None:
    records = _rotated_then_revoked(keys)
    report = verify_chain(records, verifier)
    assert (report.last_checkpoint_seq, report.unvouched) == (4, (2,))
    with pytest.raises(ChainBroken) as err:
        verify_chain(records[:3], verifier)  # the revoked checkpoint is the newest
    assert err.value.seq == 2
    bad = records[3].model_copy(update={"party": "hub-x"})
    with pytest.raises(ChainBroken) as err:
        verify_chain([*records[:3], bad, records[4]], verifier)  # the first fault is named
    assert err.value.seq == 2


# -- forged checkpoints ----------------------------------------------------------------------


def _forged_checkpoint(w: ChainWriter, keys: FileKeyStore) -> AuditRecord:
    """A checkpoint over w's head signed by the console's key: never the worker's."""
    wrong = KeystoreAuditSigner(keys, Principal.CONSOLE)
    cp = w.checkpoint(wrong)
    assert cp.data["key_id"] == wrong.key_id
    return cp


def test_a_checkpoint_forged_with_another_writer_s_key_vouches_for_nothing_and_lets_nothing_in(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    """Forged records and a forged checkpoint on the worker's chain wait; the worker's own
    checkpoint covers its own path, and the forgeries are refused, never indexed."""
    records = worker_chain(linker, keys)
    head = records[5]  # the first checkpoint
    forger = ChainWriter(CHAIN, clock=lambda: T0, next_seq=head.seq + 1, prev_hash=head.hash)
    forged = [forger.append(AuditKind.DECIDED, event_id="e9", party="hub-x")]
    forged.append(_forged_checkpoint(forger, keys))
    forged.append(forger.append(AuditKind.DELIVERED, event_id="e9", party="hub-x"))
    summary = index_records(store, verifier, [*records[:6], *forged, *records[6:]])
    assert summary.breaks == []
    assert summary.refused == {"not-signed-by-writer": 3}
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in records]
    topic = signed_chains(_messages([*records[:6], *forged, *records[6:]]), verifier)
    assert [r.hash for r in topic.chains[CHAIN]] == [r.hash for r in records]
    assert verify_records(topic, verifier).unvouched == 0


def test_a_chain_signed_only_by_a_forged_checkpoint_is_never_indexed(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    w = ChainWriter("console:elsewhere", clock=lambda: T0)
    rec = w.append(AuditKind.OVERRIDE_REVIEWED, event_id="e1", party="hub-a", data={})
    cp = w.append(AuditKind.CHECKPOINT, data={
        "covers_seq": 0, "covers_hash": rec.hash,
        "key_id": KeystoreAuditSigner(keys, Principal.WORKER).key_id,
        "signature": base64.b64encode(b"\0" * 64).decode(),
    })  # fmt: skip
    summary = index_records(store, verifier, [rec, cp])
    assert (summary.indexed, summary.refused) == (0, {"not-signed-by-writer": 2})
    assert store.chains() == []
    assert signed_chains(_messages([rec, cp]), verifier).chains == {}


# -- a record nobody signs -------------------------------------------------------------------


def _forged_query() -> AuditRecord:
    """Anyone able to write to accord.audit: a console record on a console that never was."""
    w = ChainWriter("console:nobody", clock=lambda: T0)
    return w.append(AuditKind.CONSOLE_QUERY, data={"by": "x", "page": "y"})


def test_a_record_never_signed_stops_holding_the_offset_once_its_partition_is_read_to_the_end(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    records = worker_chain(linker, keys)
    messages = [_forged_query(), *records]
    for run in range(2):  # the second run starts past the forgery: nothing to read again
        tracker = ChainTracker(store, verifier)
        batch = tracker.new_batch()
        start = tracker.offsets.get(0, 0)
        for i, rec in enumerate(messages[start:], start=start):
            tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
        assert tracker.commit(batch)
        assert store.offsets("accord.audit") == {0: len(messages)}
        assert tracker.waiting == 0
        assert tracker.summary.indexed == (len(records) if run == 0 else 0)
    assert store.refused_counts() == [("not-signed-by-writer", 1)]
    assert "console:nobody" not in store.chains()


def test_the_unsigned_gauge_returns_to_zero_once_the_forgery_is_refused(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    registry = CollectorRegistry()
    clock = (T0 + timedelta(hours=1)).timestamp()
    indexer = Indexer(store, verifier, kafka=None, registry=registry, clock=lambda: clock)  # type: ignore[arg-type]  # no Kafka here
    records = [_forged_query(), *worker_chain(linker, keys)]
    assert indexer._commit(_fetched(records), ended={})  # the partition goes on: it waits
    assert registry.get_sample_value("accord_audit_unsigned_oldest_seconds") == 3600
    assert store.offsets("accord.audit") == {0: 0}
    # A poll finds the partition read to its end, nothing open.
    assert indexer._commit({}, ended={0: len(records)})
    assert registry.get_sample_value("accord_audit_unsigned_oldest_seconds") == 0
    assert store.offsets("accord.audit") == {0: len(records)}
    assert store.refused_counts() == [("not-signed-by-writer", 1)]
    assert registry.get_sample_value(
        "accord_audit_refused_total", {"reason": "not-signed-by-writer"}
    ) == 1  # fmt: skip


def test_a_record_refused_as_unsigned_is_still_indexed_if_its_writer_s_checkpoint_follows(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, linker: Linker
) -> None:
    """A writer that broke the one-transaction rule loses nothing this indexer still holds."""
    records = worker_chain(linker, keys)  # checkpoints at seq 5 and 13, and the last
    tracker = ChainTracker(store, verifier)
    batch = tracker.new_batch()
    for i, rec in enumerate(records[:9]):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
    assert tracker.commit(batch)  # read to the end: 6-8 refused as never signed
    assert tracker.summary.refused == {"not-signed-by-writer": 3}
    assert store.offsets("accord.audit") == {0: 9}
    batch = tracker.new_batch()
    for i, rec in enumerate(records[9:], start=9):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
    assert tracker.commit(batch)
    assert tracker.summary.breaks == []
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in records]
