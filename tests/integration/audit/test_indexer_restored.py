"""The indexer on a real Kafka restored from a backup older than the index, then written past
the index's offsets by the workers before the indexer starts: the topic is as long as the
index expects again, but what it holds at the offsets the index read is not what it read."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.errors import AuditError
from broker.governance import AuditStore, Indexer
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.integration.audit.test_indexer_kafka import chains, produce
from tests.kafka_helpers import clients, create_topics, unique_topic
from tests.unit.audit.conftest import worker_chain

pytestmark = pytest.mark.kafka


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("accord.audit-test")
    await create_topics(kafka_bootstrap, [name], partitions=3)
    return name


async def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end as a read_committed consumer sees it (the last stable offset)."""
    consumer = clients(bootstrap).consumer(client_id="test-ends")
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def _written_past(bootstrap: str, topic: str, stored: dict[int, int],
                        linker: Linker, keys: FileKeyStore) -> list[AuditRecord]:  # fmt: skip
    """New chains' records, as the workers write them, until every partition ends at or past
    the index's offsets: what the existing check (a topic ending before them) cannot see."""
    written: list[AuditRecord] = []
    for n in range(30):
        ends = await _ends(bootstrap, topic)
        if all(ends[p] >= offset for p, offset in stored.items()):
            return written
        records = worker_chain(linker, keys, chain=f"worker:new{n}")
        await produce(bootstrap, topic, records)
        written += records
    raise AssertionError(f"{topic} did not reach the index's offsets")


async def test_a_topic_restored_older_and_written_past_the_index_is_refused_and_kept_out(
    *,
    kafka_bootstrap: str, topic: str, store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """The same topic name on a Kafka from an older backup: the first records, then others.
    The indexer names a partition and offset in one line, and takes nothing; the index on
    the Kafka it was made from reads on after a restart as before."""
    records = chains(linker, keys)
    await produce(kafka_bootstrap, topic, records)
    await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    indexed = store.offsets(topic)
    heads = store.heads()
    restored = unique_topic("accord.audit-restored")
    await create_topics(kafka_bootstrap, [restored], partitions=3)
    await produce(kafka_bootstrap, restored, records[:2])  # what the backup held
    await _written_past(kafka_bootstrap, restored, indexed, linker, keys)
    store._q(  # type: ignore[attr-defined]  # the index as it was before the restore
        "UPDATE kafka_offsets SET topic = ? WHERE topic = ?", (restored, topic)
    )
    indexer = Indexer(store, verifier, clients(kafka_bootstrap), topic=restored)
    with pytest.raises(AuditError) as err:
        await indexer.run(follow=False)
    message = str(err.value)
    assert message.startswith(f"the audit index has read {restored} partition ")
    assert "is not the one it read there: Kafka was restored from a backup older than the " \
        "index and written to since" in message  # fmt: skip
    assert message.endswith("(docs/deployment.md, Restore)")
    assert "\n" not in message
    assert store.offsets(restored) == indexed  # nothing moved, refused, broken or taken
    assert store.count() == len(records)
    assert store.refused_counts() == []
    assert store.heads() == heads

    store._q(  # type: ignore[attr-defined]  # back on the Kafka the index was made from
        "UPDATE kafka_offsets SET topic = ? WHERE topic = ?", (topic, restored)
    )
    later = worker_chain(linker, keys, chain="worker:later")
    await produce(kafka_bootstrap, topic, later)
    again = await Indexer(store, verifier, clients(kafka_bootstrap), topic=topic).run(follow=False)
    assert (again.indexed, again.breaks, dict(again.refused)) == (len(later), [], {})
    assert store.count() == len(records) + len(later)
