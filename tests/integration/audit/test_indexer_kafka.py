"""The indexer on a real Kafka: read_committed, restartable, idempotent; reviews via the topic."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import broker.kafka
from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
    record_hash,
)
from broker.errors import AuditError, ChainBroken
from broker.governance import (
    AuditStore,
    ChainAppender,
    Indexer,
    TopicChains,
    Window,
    governance_report,
    open_store,
    read_topic,
    review_override,
    signed_chains,
    signed_checkpoints,
    verify_records,
    verify_store,
)
from broker.governance._append import chain_head_on_topic
from broker.governance._topic import TopicMessage
from broker.kafka import KafkaClients, partition_for
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.kafka_helpers import admin_env, clients, create_topics, unique_topic
from tests.unit.audit.conftest import T0, Run, quiet_chain, rotate_and_revoke, worker_chain

pytestmark = pytest.mark.kafka


async def produce(bootstrap: str, topic: str, records: list[AuditRecord], *, per_tx: int = 7,
                  abort_one: bool = False) -> None:  # fmt: skip
    """Write records as the worker does: keyed by chain, in transactions."""
    producer = clients(bootstrap).transactional_producer(unique_topic("tx"), "test-audit")
    await producer.start()
    try:
        if abort_one:
            await producer.begin_transaction()
            await producer.send(topic, b'{"aborted": true}', key=b"worker:ghost")
            await producer.abort_transaction()
        for i in range(0, len(records), per_tx):
            async with producer.transaction():
                for rec in records[i : i + per_tx]:
                    await producer.send(topic, rec.to_bytes(), key=rec.chain.encode())
    finally:
        await producer.stop()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("accord.audit-test")
    await create_topics(kafka_bootstrap, [name], partitions=3)
    return name


def chains(linker: Linker, keys: FileKeyStore) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for n in range(4):
        records += worker_chain(linker, keys, chain=f"worker:w{n}")
    return records


async def test_an_interrupted_then_restarted_indexer_ends_with_each_record_exactly_once(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, audit_db_url: str, tmp_path: Path,
    verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    records = chains(linker, keys)
    await produce(kafka_bootstrap, topic, records, abort_one=True)

    first = Indexer(store, verifier, clients(kafka_bootstrap), topic=topic, max_batch=5)
    await first.run(follow=False, max_records=12)
    partial = store.count()
    assert 0 < partial < len(records)

    restarted = Indexer(store, verifier, clients(kafka_bootstrap), topic=topic, max_batch=5)
    summary = await restarted.run(follow=False)
    assert summary.breaks == []
    assert summary.duplicates == 0  # resumed from the offsets committed with the rows
    assert store.count() == len(records)  # the aborted transaction's record never arrives

    again = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert (again.indexed, store.count()) == (0, len(records))

    # Offsets lost (or the topic re-read from the start): still no duplicate row.
    store._q("DELETE FROM kafka_offsets")  # type: ignore[attr-defined]
    reread = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert (reread.duplicates, store.count()) == (len(records), len(records))

    fresh = open_store(f"sqlite:///{tmp_path / 'fresh.db'}", home=tmp_path)
    try:
        await Indexer(fresh, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
        assert fresh.count() == store.count()
    finally:
        fresh.close()
    assert verify_store(store, verifier).records == len(records)


async def test_the_topic_itself_verifies_and_a_forged_record_on_it_is_left_out_and_counted(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    records = worker_chain(linker, keys, chain="worker:t")
    await produce(kafka_bootstrap, topic, records)
    await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    reference = signed_checkpoints(store)
    on_topic = signed_chains(await read_topic(clients(kafka_bootstrap), topic), verifier)
    summary = verify_records(on_topic, verifier, reference=reference)
    assert (summary.records, summary.chains, summary.refused) == (len(records), 1, 0)

    # A record appended by someone who can write to the topic but holds no audit key.
    body = json.loads(records[-1].to_bytes())
    body.update(seq=body["seq"] + 1, prev_hash=records[-1].hash, kind="checkpoint",
                data={"covers_seq": body["seq"], "covers_hash": records[-1].hash,
                      "key_id": "forged", "signature": "AAAA"})  # fmt: skip
    body.pop("hash")
    body["hash"] = record_hash(body)
    forged = AuditRecord.model_validate(body)
    await produce(kafka_bootstrap, topic, [forged])
    on_topic = signed_chains(await read_topic(clients(kafka_bootstrap), topic), verifier)
    summary = verify_records(on_topic, verifier, reference=reference)
    # The genuine chain stands; the forged checkpoint vouches for nothing, so it waits.
    assert (summary.records, summary.refused, summary.unsigned) == (len(records), 0, 1)
    assert "1 record awaiting their writer's checkpoint" in summary.line()
    indexed = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(
        follow=False
    )
    # Read to the end of its partition, it is refused rather than waited for for ever.
    assert (indexed.breaks, indexed.refused) == ([], {"not-signed-by-writer": 1})
    assert store.refused_counts() == [("not-signed-by-writer", 1)]
    again = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    # The stored offset passed it: the next run reads nothing again.
    assert (again.indexed, again.duplicates, again.refused) == (0, 0, {})

    # An emptied topic fails against what the index vouches it held.
    with pytest.raises(ChainBroken, match="signed checkpoint covers"):
        verify_records(TopicChains(), verifier, reference=reference)


async def test_records_refused_in_an_earlier_run_are_read_again_when_a_checkpoint_covers_them(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    """A quiet chain whose last checkpoint's key is revoked before it is indexed: refused,
    then, when the worker writes again (by its new key), read again from the topic and
    indexed, not taken for missing signed history."""
    records, w, signer = quiet_chain(keys)
    await produce(kafka_bootstrap, topic, records[:3])
    first = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert first.indexed == 3
    await produce(kafka_bootstrap, topic, records[3:])
    rotate_and_revoke(keys, records[5])
    quiet = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert (quiet.indexed, quiet.refused) == (0, {"not-signed-by-writer": 3})
    later = [w.append(AuditKind.RECEIVED, event_id="e3", party="wmp"), w.checkpoint(signer)]
    await produce(kafka_bootstrap, topic, later)
    summary = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(
        follow=False
    )
    assert (summary.breaks, summary.indexed, dict(summary.refused)) == ([], 5, {})
    assert [r.hash for r in store.rows("worker:quiet")] == [r.hash for r in [*records, *later]]
    assert store.refused_counts() == []
    assert verify_store(store, verifier).records == 8


async def test_a_record_whose_checkpoint_another_open_transaction_holds_back_waits_for_it(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    """The worker's transaction (records 3 and 4, checkpoint 5) commits while another
    writer's transaction, begun between 3 and 4 on the same partition, is still open: record
    3 is visible, its checkpoint is above the last stable offset. It is not refused; once the
    other commits, a run reading one message per batch indexes it, nothing refused."""
    records, _, signer = quiet_chain(keys)
    chain = records[0].chain
    await produce(kafka_bootstrap, topic, records[:3])
    first = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert first.indexed == 3
    partition = partition_for(chain.encode(), [0, 1, 2])
    other = next(f"worker:o{n}" for n in range(100)
                 if partition_for(f"worker:o{n}".encode(), [0, 1, 2]) == partition)  # fmt: skip
    writer = ChainWriter(other, clock=lambda: T0)
    theirs = [writer.append(AuditKind.POLICY_LOADED, data={"version": "v1"})]
    theirs.append(writer.checkpoint(signer))
    mine = clients(kafka_bootstrap).transactional_producer(unique_topic("tx"), "test-audit")
    them = clients(kafka_bootstrap).transactional_producer(unique_topic("tx"), "test-audit")
    await mine.start()
    await them.start()
    try:
        await mine.begin_transaction()
        sent = await mine.send_and_wait(topic, records[3].to_bytes(), key=chain.encode())
        await them.begin_transaction()
        await them.send_and_wait(topic, theirs[0].to_bytes(), key=other.encode())
        for rec in records[4:]:
            await mine.send_and_wait(topic, rec.to_bytes(), key=chain.encode())
        await mine.commit_transaction()
        held = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(
            follow=False
        )
        assert (held.breaks, held.indexed, dict(held.refused)) == ([], 0, {})
        assert store.offsets(topic)[partition] == sent.offset  # record 3 waits
        await them.send_and_wait(topic, theirs[1].to_bytes(), key=other.encode())
        await them.commit_transaction()
    finally:
        await mine.stop()
        await them.stop()
    summary = await Indexer(
        store, verifier, clients(kafka_bootstrap), topic=topic, max_batch=1
    ).run(follow=False)
    assert (summary.breaks, summary.indexed, dict(summary.refused)) == ([], 3 + 2, {})
    assert [r.hash for r in store.rows(chain)] == [r.hash for r in records]
    assert store.refused_counts() == []
    assert verify_store(store, verifier).records == len(records) + 2


async def test_a_review_goes_through_the_log_and_the_index_picks_it_up(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    await produce(kafka_bootstrap, topic, worker_chain(linker, keys, chain="worker:a"))
    await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    [pending] = governance_report(store, Window()).pending_overrides
    signer = KeystoreAuditSigner(keys, Principal.CONSOLE)
    findings = ("justified", "not-justified")
    for finding in findings:
        # The second review is written by a new writer before the indexer has seen the
        # first: the console chain must resume from the topic, not from the (stale) index.
        appender = ChainAppender(
            store,
            kafka=clients(kafka_bootstrap),
            chain="console:ig-host",
            signer=signer,
            verifier=verifier,
            topic=topic,
        )
        try:
            rec = await review_override(
                store, appender, event_id=pending.event_id, recipient=pending.recipient,
                reviewed_by="ig-jo", finding=finding,
            )  # fmt: skip
        finally:
            await appender.close()
        assert rec.kind is AuditKind.OVERRIDE_REVIEWED
        assert store.review_of(pending.event_id, pending.recipient) is None  # not yet indexed
    summary = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(
        follow=False
    )
    assert summary.breaks == []
    kinds = [json.loads(r.body)["kind"] for r in store.rows("console:ig-host")]
    assert kinds == ["override_reviewed", "checkpoint"] * 2
    review = store.review_of(pending.event_id, pending.recipient)
    assert review is not None
    assert (review.reviewed_by, review.finding) == ("ig-jo", "justified")  # the first stands
    assert governance_report(store, Window()).pending_overrides == ()
    assert verify_store(store, verifier).signed_chains == 2


def test_verify_from_topic_is_not_fooled_by_a_checkpoint_indexed_after_it_read_the_topic(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore, audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The index trails the topic: its checkpoints vouch only if read before the topic is."""
    records = worker_chain(linker, keys)
    cut = max(i for i, r in enumerate(records) if r.kind == "checkpoint") - 1
    asyncio.run(produce(kafka_bootstrap, topic, records[:cut]))
    indexed = asyncio.run(
        Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    )
    assert indexed.indexed == cut

    async def read_then_the_worker_and_indexer_go_on(kafka: KafkaClients) -> list[TopicMessage]:
        messages = await read_topic(kafka, topic)
        await produce(kafka.bootstrap, topic, records[cut : cut + 2])
        await Indexer(store, verifier, kafka, topic=topic).run(follow=False)
        return messages

    monkeypatch.setattr("broker.governance.read_topic", read_then_the_worker_and_indexer_go_on)
    counted = broker.kafka.partition_count  # of this test's topic, which stands for the log

    async def partitions_of_this_topic(kafka: KafkaClients, _: str) -> int:
        return await counted(kafka, topic)

    monkeypatch.setattr("broker.kafka.partition_count", partitions_of_this_topic)
    for name, value in admin_env(kafka_bootstrap).items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(["audit", "verify", "--from-topic", "--db", audit_db_url])
    assert (code, err) == (0, ""), err
    assert out.startswith(f"audit log intact (topic): {cut} records in 1 chain")
    assert store.count() == cut + 2  # the checkpoint was indexed while verification ran


async def test_a_console_finds_its_chain_head_even_while_another_indexer_commits(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore, audit_db_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Head and offsets as one snapshot: else it would resume its chain at an old head (a fork)."""
    records = console_chain(keys, "console:desk")  # checkpoints at seq 2, 4 and 6
    await produce(kafka_bootstrap, topic, records[:3])
    await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    await produce(kafka_bootstrap, topic, records[3:])
    assert store.heads()["console:desk"].seq == 2
    other = open_store(audit_db_url, home=tmp_path)
    indexer_ran = False

    class OtherIndexerCommitsMidRead:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def offsets(self, topic: str) -> dict[int, int]:
            nonlocal indexer_ran
            if not indexer_ran:
                indexer_ran = True
                # Synchronous, as an indexer in another process would be: between two reads.
                catch_up = Indexer(other, verifier, clients(kafka_bootstrap), topic=topic)
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(asyncio.run, catch_up.run(follow=False)).result()
            return store.offsets(topic)

    try:
        seq, digest = await chain_head_on_topic(
            clients(kafka_bootstrap),
            "console:desk",
            OtherIndexerCommitsMidRead(),  # type: ignore[arg-type]  # a proxy of one
            verifier,
            topic,
        )
    finally:
        other.close()
    assert indexer_ran
    assert store.heads()["console:desk"].seq == len(records) - 1
    assert (seq, digest) == (records[-1].seq, records[-1].hash)


def console_chain(keys: FileKeyStore, chain: str) -> list[AuditRecord]:
    """A console's look-ups, each append sealed by the console's own checkpoint."""
    w = ChainWriter(chain, clock=lambda: T0)
    signer = KeystoreAuditSigner(keys, Principal.CONSOLE)
    out: list[AuditRecord] = []
    for pages in (["dashboard", "overrides"], ["subject"], ["agreements"]):
        out += [w.append(AuditKind.CONSOLE_QUERY, data={"officer": "ig.jo", "page": p})
                for p in pages]  # fmt: skip
        out.append(w.checkpoint(signer))
    return out


async def test_a_console_resumes_from_its_own_signed_head_past_forged_and_broken_messages(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    """Someone puts an undecodable message and a record linking to the console's head under
    its key: the console neither fails nor continues from the forgery."""
    records = console_chain(keys, "console:ig")
    forged = ChainWriter("console:ig", clock=lambda: T0, next_seq=records[-1].seq + 1,
                         prev_hash=records[-1].hash).append(
        AuditKind.OVERRIDE_REVIEWED, event_id="e1", party="coord",
        data={"reviewed_by": "nobody", "finding": "justified"})  # fmt: skip
    await produce(kafka_bootstrap, topic, records)
    producer = clients(kafka_bootstrap).producer("test-forger")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not json", key=b"console:ig")
        await producer.send_and_wait(topic, forged.to_bytes(), key=b"console:ig")
    finally:
        await producer.stop()
    seq, digest = await chain_head_on_topic(
        clients(kafka_bootstrap), "console:ig", store, verifier, topic
    )
    assert (seq, digest) == (records[-1].seq, records[-1].hash)


async def test_reading_the_topic_from_given_offsets_returns_every_later_message_in_order(
    *, kafka_bootstrap: str, topic: str, linker: Linker, keys: FileKeyStore
) -> None:
    """What a console's appender resumes from: a partition named in ``start`` from that
    offset, every other one from its beginning, each in order, none twice."""
    await produce(kafka_bootstrap, topic, chains(linker, keys), abort_one=True)
    everything = await read_topic(clients(kafka_bootstrap), topic)
    by_partition: dict[int, list[int]] = {}
    for m in everything:
        by_partition.setdefault(m.partition, []).append(m.offset)
    assert len(by_partition) >= 2, "the chains should spread over the partitions"
    assert all(m.key != b"worker:ghost" for m in everything)  # aborted: never read
    first = max(by_partition, key=lambda p: len(by_partition[p]))
    cut = by_partition[first][len(by_partition[first]) // 2]
    assert cut > by_partition[first][0]  # some of it is left behind
    later = await read_topic(clients(kafka_bootstrap), topic, start={first: cut})
    expected = [(m.partition, m.offset) for m in everything
                if m.partition != first or m.offset >= cut]  # fmt: skip
    assert [(m.partition, m.offset) for m in later] == expected


async def test_a_topic_restored_older_than_the_index_is_refused_before_anything_is_indexed(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """The index read the topic to its end; then Kafka came back from an older backup: the
    same topic with fewer records on each partition. The indexer says so and takes nothing."""
    records = chains(linker, keys)
    await produce(kafka_bootstrap, topic, records)
    await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    indexed = store.offsets(topic)
    assert sum(indexed.values()) >= len(records)
    restored = unique_topic("accord.audit-restored")
    await create_topics(kafka_bootstrap, [restored], partitions=3)
    await produce(kafka_bootstrap, restored, records[:2])  # what the backup held
    store._q(  # type: ignore[attr-defined]  # the index as it was before the restore
        "UPDATE kafka_offsets SET topic = ? WHERE topic = ?", (restored, topic)
    )
    indexer = Indexer(store, verifier, clients(kafka_bootstrap), topic=restored)
    with pytest.raises(AuditError, match=r"^the audit index has read accord\.audit-restored"):
        await indexer.run(follow=False)
    assert store.offsets(restored) == indexed  # nothing moved, refused or broken
    assert store.count() == len(records)
    assert store.refused_counts() == []
    assert all(h.broken_seq is None for h in store.heads().values())
