"""Records refused as never signed in one run, and covered by their writer's next valid
checkpoint in a later run, are read again from the topic and indexed, not taken for missing
history (a quiet chain whose last checkpoint's key was revoked before a run read it)."""

from __future__ import annotations

from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.errors import TransportError
from broker.governance import AuditStore, Indexer, verify_store
from broker.governance._index import ChainTracker
from broker.keys import FileKeyStore
from broker.principals import Principal
from tests.unit.audit.conftest import T0, FakeKafka, Msg, quiet_chain, rotate_and_revoke

CHAIN = "worker:quiet"  # quiet_chain's
TOPIC = "accord.audit"


def _offer(tracker: ChainTracker, records: list[AuditRecord], start: int) -> bool:
    batch = tracker.new_batch()
    for i, rec in enumerate(records, start=start):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), 0, i)
    return tracker.commit(batch)


def _topic(records: list[AuditRecord]) -> list[tuple[bytes, bytes, int, int]]:
    return [(r.chain.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records)]


def test_records_refused_in_one_run_are_read_again_and_indexed_when_a_later_run_covers_them(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    records, w, _ = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), records[:3], 0)  # run 0: 0-2 while K1 is live
    rotate_and_revoke(keys, records[5])
    # Run 1 reads 3-5 to the end of the partition: checkpoint 5 vouches for nothing now.
    run1 = ChainTracker(store, verifier)
    assert _offer(run1, records[3:], 3)
    assert run1.summary.refused == {"not-signed-by-writer": 3}
    assert store.offsets(TOPIC) == {0: 6}
    # Days later the worker writes again, by K2: its checkpoint links through 3-5.
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    topic = _topic([*records, *later])
    run2 = ChainTracker(store, verifier)
    assert not _offer(run2, later, 6)  # not a break: those refused records are wanted first
    assert run2.wanted == {CHAIN: [(0, 3), (0, 4), (0, 5)]}
    assert store.heads()[CHAIN].broken_seq is None
    run2.restore([topic[3], topic[4], topic[5]])
    assert _offer(run2, later, run2.offsets[0])  # read on from the stored offset
    assert run2.summary.breaks == []
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in [*records, *later]]
    assert store.heads()[CHAIN].seq == 7
    assert store.offsets(TOPIC) == {0: 8}
    assert store.refused_counts() == []  # indexed after all: no longer shown as refused
    checked = verify_store(store, verifier)
    assert (checked.records, checked.unvouched) == (8, 2)  # K1 signed 2 and 5: revoked


def test_a_forgery_read_again_is_never_indexed_and_missing_history_still_breaks_the_chain(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """A record forged onto the chain's head, refused in an earlier run, is read again once;
    the writer's checkpoint does not run through it, so the chain breaks (records it signed
    are missing) and the forgery stays refused."""
    records, w, signer = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), records[:3], 0)
    head = records[2]
    forger = ChainWriter(CHAIN, clock=lambda: T0, next_seq=head.seq + 1, prev_hash=head.hash)
    forged = forger.append(AuditKind.DECIDED, event_id="e9", party="hub-x")
    assert _offer(ChainTracker(store, verifier), [forged], 3)
    assert store.refused_counts() == [("not-signed-by-writer", 1)]
    # The writer's 3-5 never reach the topic; its next checkpoint arrives after them.
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    run = ChainTracker(store, verifier)
    assert not _offer(run, later, 4)
    assert run.wanted == {CHAIN: [(0, 3)]}
    run.restore([(CHAIN.encode(), forged.to_bytes(), 0, 3)])
    assert _offer(run, later, run.offsets[0])  # read once: no second round
    assert [b.seq for b in run.summary.breaks] == [7]
    assert store.heads()[CHAIN].broken_seq == 7
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in records[:3]]
    assert store.refused_counts() == [("does-not-link", 1), ("not-signed-by-writer", 1)]


def test_what_is_read_again_counts_only_if_it_is_the_refused_record_of_that_chain(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """A message handed back at an offset nobody asked for, or of another chain, is ignored:
    the chain still breaks rather than take it."""
    records, w, _ = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), records[:3], 0)
    rotate_and_revoke(keys, records[5])
    assert _offer(ChainTracker(store, verifier), records[3:], 3)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp")]
    later.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    topic = _topic(records)
    run = ChainTracker(store, verifier)
    assert not _offer(run, later, 6)
    run.restore([(b"worker:other", topic[3][1], 0, 3), (*topic[4][:2], 0, 9), topic[5]])
    assert _offer(run, later, 6)
    assert [b.seq for b in run.summary.breaks] == [7]


# -- the indexer, on a fake of the consumer --------------------------------------------------


async def test_an_indexer_restarted_after_the_refusal_reads_the_refused_offsets_and_indexes_them(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    records, w, _ = quiet_chain(keys)
    log = [Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records[:3])]

    async def run() -> Any:
        indexer = Indexer(store, verifier, FakeKafka(log), topic=TOPIC)  # type: ignore[arg-type]  # a fake of Kafka
        return await indexer.run(follow=False)

    assert (await run()).indexed == 3
    rotate_and_revoke(keys, records[5])
    log += [Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records[3:], start=3)]
    assert (await run()).refused == {"not-signed-by-writer": 3}
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    log += [Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(later, start=6)]
    summary = await run()
    assert (summary.breaks, summary.indexed, dict(summary.refused)) == ([], 5, {})
    assert store.heads()[CHAIN] == store.heads()[CHAIN].__class__(CHAIN, 7, later[-1].hash)
    assert store.refused_counts() == []
    assert verify_store(store, verifier).records == 8


async def test_a_read_again_that_fails_is_tried_again_never_taken_for_missing_history(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """A read of the refused offsets that comes back empty (a leader moving) must not break
    the chain for good: the run fails, and the next one, Kafka well again, indexes it."""
    records, w, _ = quiet_chain(keys)
    kafka = FakeKafka([Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records[:3])])

    async def run() -> Any:
        indexer = Indexer(store, verifier, kafka, topic=TOPIC)  # type: ignore[arg-type]  # a fake of Kafka
        return await indexer.run(follow=False)

    assert (await run()).indexed == 3
    rotate_and_revoke(keys, records[5])
    kafka.log += [Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records[3:], 3)]
    assert (await run()).refused == {"not-signed-by-writer": 3}
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    kafka.log += [Msg(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(later, start=6)]
    kafka.failing_single_reads = True
    with pytest.raises(TransportError, match="again at offset 3"):
        await run()
    assert store.heads()[CHAIN].broken_seq is None
    kafka.failing_single_reads = False
    summary = await run()
    assert (summary.breaks, summary.indexed, dict(summary.refused)) == ([], 5, {})
    assert verify_store(store, verifier).records == 8


# -- what a record read again must be to be taken ---------------------------------------------


def _refused_3_to_5(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> tuple[list[AuditRecord], list[AuditRecord], ChainTracker]:
    """quiet_chain: 0-2 indexed, 3-5 refused as never signed (K1 revoked), then 6 and
    checkpoint 7 by K2, which has 3-5 wanted. Returns (0-5, [6, 7], that run)."""
    records, w, _ = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), records[:3], 0)
    rotate_and_revoke(keys, records[5])
    assert _offer(ChainTracker(store, verifier), records[3:], 3)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp")]
    later.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    run = ChainTracker(store, verifier)
    assert not _offer(run, later, 6)
    assert run.wanted == {CHAIN: [(0, 3), (0, 4), (0, 5)]}
    return records, later, run


def test_a_copy_of_a_refused_record_under_another_key_read_again_is_not_taken(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Record 3 itself, but keyed as another chain's (so on no partition of its own), with
    4 and 5 intact: the checkpoint does not link, and the chain breaks."""
    records, later, run = _refused_3_to_5(store, keys, verifier)
    topic = _topic(records)
    run.restore([(b"worker:other", topic[3][1], 0, 3), topic[4], topic[5]])
    assert _offer(run, later, 6)
    assert [b.seq for b in run.summary.breaks] == [7]
    assert [r.seq for r in store.rows(CHAIN)] == [0, 1, 2]


def test_a_record_of_another_chain_read_again_at_a_refused_offset_is_not_taken(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """At offset 3, keyed as this chain, a record 3 of another chain: it is not held for
    this chain (4 and 5 are), and the checkpoint does not link without the real 3."""
    records, later, run = _refused_3_to_5(store, keys, verifier)
    topic = _topic(records)
    other = ChainWriter("worker:other", clock=lambda: records[3].at, next_seq=3,
                        prev_hash=records[2].hash).append(AuditKind.RECEIVED, event_id="e2",
                                                          party="wmp")  # fmt: skip
    run.restore([(CHAIN.encode(), other.to_bytes(), 0, 3), topic[4], topic[5]])
    assert {c: [r.seq for r, _ in held] for c, held in run._restored.items()} == {CHAIN: [4, 5]}
    assert _offer(run, later, 6)
    assert [b.seq for b in run.summary.breaks] == [7]
    assert run._restored == {}  # decided: no longer held


def test_a_record_read_again_whose_body_does_not_match_its_hash_is_not_taken(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Record 3 with its hash but another party: 4's link to that hash does not make the
    altered body a record the checkpoint covers; the chain breaks instead."""
    records, later, run = _refused_3_to_5(store, keys, verifier)
    topic = _topic(records)
    altered = records[3].model_copy(update={"party": "hub-x"})
    assert altered.hash == records[3].hash != altered.computed_hash()
    run.restore([(CHAIN.encode(), altered.to_bytes(), 0, 3), topic[4], topic[5]])
    assert _offer(run, later, 6)
    assert [b.seq for b in run.summary.breaks] == [7]
    assert "hub-x" not in {r.party for r in store.rows(CHAIN)}


def test_a_record_read_again_that_skips_a_seq_is_not_taken_even_under_a_signed_checkpoint(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Record 4 hash-linked straight onto head 2, and a checkpoint 5 signed on it: 4 was
    refused as not linking, is read again for 5, and is still refused; the chain breaks."""
    records, _, signer = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), records[:3], 0)
    head = records[2]
    skip = ChainWriter(CHAIN, clock=lambda: T0, next_seq=head.seq + 2, prev_hash=head.hash)
    gap = [skip.append(AuditKind.RECEIVED, event_id="e2", party="wmp"), skip.checkpoint(signer)]
    run = ChainTracker(store, verifier)
    assert _offer(run, gap[:1], 3)
    assert run.summary.refused == {"does-not-link": 1}
    assert not _offer(run, gap[1:], 4)
    assert run.wanted == {CHAIN: [(0, 3)]}
    run.restore([(CHAIN.encode(), gap[0].to_bytes(), 0, 3)])
    assert _offer(run, gap[1:], 4)
    assert [b.seq for b in run.summary.breaks] == [5]
    assert [r.seq for r in store.rows(CHAIN)] == [0, 1, 2]


def test_a_refusal_outside_the_head_and_the_checkpoint_is_not_read_again(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Refused as not linking: a record at the indexed head's seq 2 and one at checkpoint 7's
    own seq. Only 3-5, strictly between them, are read again; the chain is indexed."""
    records, w, _ = quiet_chain(keys)
    low = ChainWriter(CHAIN, clock=lambda: T0, next_seq=2, prev_hash=records[0].hash)
    high = ChainWriter(CHAIN, clock=lambda: T0, next_seq=7, prev_hash=records[0].hash)
    # Offsets: 0 the seq-2 forgery, 1-3 records 0-2, 4-6 records 3-5, 7 the seq-7 forgery.
    assert _offer(ChainTracker(store, verifier), [low.append(AuditKind.RECEIVED, event_id="x"),
                                                  *records[:3]], 0)  # fmt: skip
    rotate_and_revoke(keys, records[5])
    assert _offer(ChainTracker(store, verifier),
                  [*records[3:], high.append(AuditKind.RECEIVED, event_id="y")], 4)  # fmt: skip
    assert store.refused_counts() == [("does-not-link", 2), ("not-signed-by-writer", 3)]
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp")]
    later.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    run = ChainTracker(store, verifier)
    assert not _offer(run, later, 8)
    assert run.wanted == {CHAIN: [(0, 4), (0, 5), (0, 6)]}
    run.restore([(CHAIN.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records[3:], 4)])
    assert _offer(run, later, 8)
    assert run.summary.breaks == []
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in [*records, *later]]
