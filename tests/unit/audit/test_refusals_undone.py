"""A genuine chain is never declared broken because the indexer refused genuine records
earlier: refusals a later valid checkpoint can undo (never signed as far as a run could tell,
not linking behind a refused parent, a checkpoint that did not verify behind one) are read
again, whichever batch or run they were refused in; a record read while another writer's
transaction is open waits for its checkpoint instead of being refused; what refused records
cost in memory is bounded. Forgeries are still never indexed."""

from __future__ import annotations

from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore, Indexer, IndexSummary, verify_store
from broker.governance import _signed as signed_module
from broker.governance import _tracker as tracker_module
from broker.governance._index import ChainTracker
from broker.keys import FileKeyStore
from broker.principals import Principal
from tests.unit.audit.conftest import (
    T0,
    FakeKafka,
    Msg,
    on_topic,
    quiet_chain,
    rotate_and_revoke,
)

CHAIN = "worker:quiet"  # quiet_chain's
TOPIC = "accord.audit"


def _offer(tracker: ChainTracker, msgs: list[Msg]) -> bool:
    """One batch of ``msgs`` through ``tracker``; as ``Indexer`` does, the refused records it
    wants are read again (from ``topic``) and the batch re-read from the stored offset."""
    batch = tracker.new_batch()
    for m in msgs:
        tracker.offer(batch, m.key, m.value, m.partition, m.offset)
    return tracker.commit(batch)


def _read_again(tracker: ChainTracker, topic: list[Msg]) -> None:
    by_offset = {m.offset: m for m in topic}
    tracker.restore([by_offset[o] for where in tracker.wanted.values() for _, o in where])


async def _index(
    store: AuditStore, verifier: Verifier, kafka: FakeKafka, **kw: Any
) -> IndexSummary:
    indexer = Indexer(store, verifier, kafka, topic=TOPIC, **kw)  # type: ignore[arg-type]  # a fake of Kafka
    return await indexer.run(follow=False)


def _quiet_chain_refused(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> tuple[list[AuditRecord], list[AuditRecord]]:
    """quiet_chain: 0-2 indexed; K1 revoked; 3-5 refused as never signed by a run that read
    them to the end of the partition. Then the worker's next transaction by K2: record 6 and
    checkpoint 7, which links through 3-5. Returns (0-5, [6, 7])."""
    records, w, _ = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), on_topic(records[:3]))
    rotate_and_revoke(keys, records[5])
    run = ChainTracker(store, verifier)
    assert _offer(run, on_topic(records[3:], start=3))
    assert store.refused_counts() == [("not-signed-by-writer", 3)]
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    return records, [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]


def _indexed_whole(store: AuditStore, verifier: Verifier, records: list[AuditRecord]) -> None:
    head = store.heads()[CHAIN]
    assert (head.seq, head.hash, head.broken_seq) == (records[-1].seq, records[-1].hash, None)
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in records]
    assert store.refused_counts() == []
    assert verify_store(store, verifier).records == store.count()  # every chain verifies


# -- a record refused behind a refused parent ------------------------------------------------


def test_a_record_and_its_checkpoint_in_separate_batches_are_indexed_behind_refused_records(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Record 6 alone in a batch (a max_batch boundary) is refused as not linking, its
    parent being refused; checkpoint 7 has it read again with 3-5 (the round-2 review)."""
    records, later = _quiet_chain_refused(store, keys, verifier)
    topic = on_topic([*records, *later])
    run = ChainTracker(store, verifier)
    assert _offer(run, topic[6:7])
    assert run.summary.refused == {"does-not-link": 1}
    assert not _offer(run, topic[7:8])  # not a break: 3-6 are wanted first
    assert run.wanted == {CHAIN: [(0, 3), (0, 4), (0, 5), (0, 6)]}
    _read_again(run, topic)
    assert _offer(run, topic[run.offsets[0] :])
    assert run.summary.breaks == []
    _indexed_whole(store, verifier, [*records, *later])


async def test_a_record_and_its_checkpoint_read_by_separate_runs_are_indexed_behind_refused_ones(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Another writer's transaction opens between record 6 and checkpoint 7: one run reads 6
    (refused: its parent is), the next, once that transaction has committed, reads 7."""
    records, later = _quiet_chain_refused(store, keys, verifier)
    other = ChainWriter("worker:other", clock=lambda: T0)
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    theirs = [
        other.append(AuditKind.POLICY_LOADED, data={"version": "v1"}),
        other.checkpoint(signer),
    ]
    log = [*on_topic(records), *on_topic([later[0], theirs[0], later[1], theirs[1]], start=6)]
    kafka = FakeKafka(log, stable=7)  # the other writer's transaction, open from offset 7
    first = await _index(store, verifier, kafka)
    assert (first.breaks, first.indexed, dict(first.refused)) == ([], 0, {"does-not-link": 1})
    kafka.stable = None  # it commits
    second = await _index(store, verifier, kafka)
    assert (second.breaks, second.indexed) == ([], 5 + 2)
    _indexed_whole(store, verifier, [*records, *later])


def test_a_checkpoint_refused_behind_refused_records_is_read_again_too(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """3-4 refused by one run (their checkpoint not yet read), K1 revoked, checkpoint 5 then
    refused as a bad checkpoint (it vouches for nothing, its parent is not held): the
    worker's next checkpoint, by K2, has all of them read again."""
    records, w, signer = quiet_chain(keys)
    topic = on_topic(records)
    assert _offer(ChainTracker(store, verifier), topic[:5])  # 3-4 refused at the end
    rotate_and_revoke(keys, records[5])
    run = ChainTracker(store, verifier)
    assert _offer(run, topic[5:])
    assert run.summary.refused == {"bad-checkpoint": 1}
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    topic += on_topic(later, start=6)
    run = ChainTracker(store, verifier)
    assert not _offer(run, topic[6:])
    assert run.wanted == {CHAIN: [(0, 3), (0, 4), (0, 5)]}  # 6 was refused in this batch
    _read_again(run, topic)
    assert _offer(run, topic[run.offsets[0] :])
    assert run.summary.breaks == []
    _indexed_whole(store, verifier, [*records, *later])


def test_a_forgery_refused_behind_a_refused_parent_is_read_again_but_never_indexed(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    records, later = _quiet_chain_refused(store, keys, verifier)
    forged = ChainWriter(CHAIN, clock=lambda: T0, next_seq=6, prev_hash=records[5].hash).append(
        AuditKind.DECIDED, event_id="e9", party="hub-x"
    )
    topic = on_topic([*records, forged, *later])
    run = ChainTracker(store, verifier)
    assert _offer(run, topic[6:7])  # refused: it does not link to what is held
    assert not _offer(run, topic[7:])
    assert run.wanted == {CHAIN: [(0, 3), (0, 4), (0, 5), (0, 6)]}
    _read_again(run, topic)
    assert _offer(run, topic[run.offsets[0] :])
    assert run.summary.breaks == []
    assert [r.hash for r in store.rows(CHAIN)] == [r.hash for r in [*records, *later]]
    assert store.refused_counts() == [("does-not-link", 1)]  # the forgery, still refused
    assert store.stored_hash(CHAIN, 6) == later[0].hash


# -- another writer's transaction open between a record and its checkpoint ----------------


def _interleaved(keys: FileKeyStore) -> tuple[list[AuditRecord], list[Msg]]:
    """quiet_chain's 0-2, then the worker's transaction T1 (records 3 and 4, checkpoint 5)
    with another worker's transaction T2 begun between 3 and 4 (its record at offset 4, its
    checkpoint after T1's commit marker), as Kafka lays them out on the partition."""
    records, _, _ = quiet_chain(keys)
    other = ChainWriter("worker:other", clock=lambda: T0)
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    theirs = [
        other.append(AuditKind.POLICY_LOADED, data={"version": "v1"}),
        other.checkpoint(signer),
    ]
    log = [
        *on_topic(records[:4]),  # 0-2, and T1's record 3 at offset 3
        Msg(b"worker:other", theirs[0].to_bytes(), 0, 4),  # T2 begins
        *on_topic(records[4:], start=5),  # T1's record 4 and checkpoint 5; T1's marker at 7
        Msg(b"worker:other", theirs[1].to_bytes(), 0, 8),  # T2 ends; its marker at 9
    ]
    return records, log


async def test_a_record_read_while_another_transaction_is_open_waits_for_its_checkpoint(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Record 3 is visible (its transaction committed) while its checkpoint sits above the
    last stable offset, held by the other writer's open transaction: it is not refused, and
    the next run, once that transaction ends, indexes it, batch by batch."""
    records, log = _interleaved(keys)
    kafka = FakeKafka(log, stable=4)
    first = await _index(store, verifier, kafka)
    assert (first.breaks, first.indexed, dict(first.refused)) == ([], 3, {})
    assert store.offsets(TOPIC) == {0: 3}  # record 3 waits: a restart reads it again
    kafka.stable = None
    second = await _index(store, verifier, kafka, max_batch=1)
    assert (second.breaks, second.indexed, dict(second.refused)) == ([], 5, {})
    _indexed_whole(store, verifier, records)
    assert store.heads()["worker:other"].seq == 1


async def test_a_forgery_read_while_another_transaction_is_open_is_refused_once_it_ends(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """It waits no longer than the transactions open when it was read (bounded by the
    producers' transaction timeout): then it is refused and no longer holds the offset."""
    forged = ChainWriter("console:nobody", clock=lambda: T0).append(
        AuditKind.CONSOLE_QUERY, data={"by": "x", "page": "y"}
    )
    records, _, _ = quiet_chain(keys)
    other = ChainWriter("worker:other", clock=lambda: T0)
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    theirs = [
        other.append(AuditKind.POLICY_LOADED, data={"version": "v1"}),
        other.checkpoint(signer),
    ]
    log = [*on_topic(records[:3]), *on_topic([forged, *theirs], start=3)]
    kafka = FakeKafka(log, stable=4)  # the other writer's transaction, open from offset 4
    first = await _index(store, verifier, kafka)
    assert (first.indexed, dict(first.refused), store.offsets(TOPIC)) == (3, {}, {0: 3})
    kafka.stable = None  # it commits
    second = await _index(store, verifier, kafka)
    assert (second.indexed, dict(second.refused)) == (2, {"not-signed-by-writer": 1})
    assert store.offsets(TOPIC) == {0: 6}
    assert "console:nobody" not in store.chains()


# -- what refused records cost in memory -------------------------------------------------------


def _never_signed(chain: str, n: int) -> list[AuditRecord]:
    w = ChainWriter(chain, clock=lambda: T0)
    return [w.append(AuditKind.CONSOLE_QUERY, data={"by": "x", "page": str(i)}) for i in range(n)]


def test_refused_records_kept_in_memory_are_capped_per_chain_and_in_total(
    store: AuditStore, verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signed_module, "REFUSED_HELD_PER_CHAIN", 3)
    monkeypatch.setattr(tracker_module, "REFUSED_HELD", 5)
    tracker = ChainTracker(store, verifier)
    assert _offer(tracker, on_topic(_never_signed("console:a", 10)))
    assert tracker.summary.refused == {"not-signed-by-writer": 10}
    assert [t.refused_held for t in tracker._tips.values()] == [3]  # the newest three
    forged = [*_never_signed("console:b", 2), *_never_signed("console:c", 2)]
    assert _offer(tracker, on_topic(forged, start=10))
    assert sum(t.refused_held for t in tracker._tips.values()) == 5
    # Records on ever new chain names: a tip that holds nothing more is dropped.
    many = [r for n in range(20) for r in _never_signed(f"console:x{n}", 1)]
    assert _offer(tracker, on_topic(many, start=14))
    assert sum(t.refused_held for t in tracker._tips.values()) == 5
    assert len(tracker._tips) <= 5
    assert store.refused_counts() == [("not-signed-by-writer", 34)]  # all still recorded
    assert store.offsets(TOPIC) == {0: 34}


def test_a_genuine_record_dropped_from_memory_is_read_again_when_its_checkpoint_comes(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that broke the one-transaction rule: 3-4 refused at the end of the
    partition, the oldest dropped from memory; checkpoint 5 has it read again by offset."""
    monkeypatch.setattr(signed_module, "REFUSED_HELD_PER_CHAIN", 1)
    records, _, _ = quiet_chain(keys)
    topic = on_topic(records)
    run = ChainTracker(store, verifier)
    assert _offer(run, topic[:5])
    assert [t.refused_held for t in run._tips.values()] == [1]
    assert not _offer(run, topic[5:])
    assert run.wanted == {CHAIN: [(0, 3), (0, 4)]}
    _read_again(run, topic)
    assert _offer(run, topic[run.offsets[0] :])
    assert run.summary.breaks == []
    _indexed_whole(store, verifier, records)


def _forged_at_3_and_refused(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, forged: int
) -> tuple[list[AuditRecord], list[Msg]]:
    """_quiet_chain_refused, with ``forged`` records of seq 3 linking to head 2 written after
    the writer's 3-5 (offsets 6 on) and refused as never signed too. Returns (0-5 and 6-7,
    the topic: 0-5, the forgeries, 6-7)."""
    records, w, _ = quiet_chain(keys)
    assert _offer(ChainTracker(store, verifier), on_topic(records[:3]))
    rotate_and_revoke(keys, records[5])
    head = records[2]
    copies = [
        ChainWriter(CHAIN, clock=lambda: T0, next_seq=3, prev_hash=head.hash).append(
            AuditKind.RECEIVED, event_id=f"f{i}", party="wmp"
        )
        for i in range(forged)
    ]
    assert _offer(ChainTracker(store, verifier), on_topic([*records[3:], *copies], start=3))
    signer = KeystoreAuditSigner(keys, Principal.WORKER)
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    genuine = [*records, *later]
    return genuine, on_topic([*records, *copies, *later])


def test_what_is_read_again_is_bounded_per_seq_and_forgotten_once_the_checkpoint_decides(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five forgeries at seq 3 beside the writer's 3: two of seq 3 are read again (the first
    in the topic), 4 and 5 still are, and the chain is indexed; nothing read again is held
    once the checkpoint has covered it."""
    monkeypatch.setattr(tracker_module, "REREAD_PER_SEQ", 2)
    genuine, topic = _forged_at_3_and_refused(store, keys, verifier, forged=5)
    run = ChainTracker(store, verifier)
    assert not _offer(run, topic[-2:])
    assert run.wanted == {CHAIN: [(0, 3), (0, 6), (0, 4), (0, 5)]}
    _read_again(run, topic)
    assert len(run._restored[CHAIN]) == 4
    assert _offer(run, topic[run.offsets[0] :])
    assert run.summary.breaks == []
    assert run._restored == {}
    head = store.heads()[CHAIN]
    assert (head.seq, head.hash, head.broken_seq) == (7, genuine[-1].hash, None)
    assert store.refused_counts() == [("not-signed-by-writer", 5)]  # the forgeries


def test_a_gap_with_more_refusals_than_the_bound_breaks_the_chain_rather_than_read_them_all(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker_module, "REREAD_HELD", 3)
    _, topic = _forged_at_3_and_refused(store, keys, verifier, forged=5)
    run = ChainTracker(store, verifier)
    assert not _offer(run, topic[-2:])
    assert run.wanted == {CHAIN: [(0, 3), (0, 6), (0, 7)]}  # all of seq 3 come first
    _read_again(run, topic)
    assert _offer(run, topic[run.offsets[0] :])
    assert [b.seq for b in run.summary.breaks] == [7]
    assert run._restored == {}
