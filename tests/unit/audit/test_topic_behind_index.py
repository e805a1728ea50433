"""An index that has read the audit topic further than the topic now reaches (Kafka restored
from a backup older than the index, or the topic recreated) is refused in one line, at start
and under a running indexer, before anything is read from it: indexed on, the writers' new
records would be refused as rewriting history, and their next checkpoints break the chains."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.audit import KeystoreAuditVerifier as Verifier
from broker.errors import AuditError, TransportError
from broker.governance import AuditStore, Indexer
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import (
    FakeConsumer,
    FakeKafka,
    Msg,
    Part,
    on_topic,
    quiet_chain,
    worker_chain,
)

TOPIC = "accord.audit"


class _Waiting(FakeConsumer):
    """A fetch that waits, as Kafka's does: a following indexer lets other tasks run."""

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        await asyncio.sleep(0.005)
        return await super().getmany(*tps, max_records=max_records, **kw)


class _WaitingKafka(FakeKafka):
    def consumer(self, **_: Any) -> FakeConsumer:
        return _Waiting(self)


async def test_an_index_further_than_the_topic_is_refused_at_start_and_left_as_it_was(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    records = worker_chain(linker, keys)
    kafka = FakeKafka(on_topic(records))
    await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    assert store.offsets(TOPIC) == {0: len(records)}
    kafka.log = kafka.log[:5]  # Kafka restored from an older backup
    with pytest.raises(AuditError) as err:
        await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    message = str(err.value)
    assert message.startswith(
        f"the audit index has read {TOPIC} partition 0 up to offset {len(records)}, but the "
        "topic ends at offset 5: Kafka was restored from a backup older than the index, or "
        "the topic recreated; nothing was indexed."
    )
    assert "'accord audit index --once'" in message
    assert "\n" not in message
    assert store.offsets(TOPIC) == {0: len(records)}
    assert store.count() == len(records)
    assert store.refused_counts() == []  # nothing refused, no chain broken
    assert all(h.broken_seq is None for h in store.heads().values())


async def test_a_topic_shrinking_under_a_running_indexer_stops_it_before_it_reads_on(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    records = worker_chain(linker, keys)
    kafka = _WaitingKafka(on_topic(records))
    indexer = Indexer(store, verifier, kafka, topic=TOPIC)  # type: ignore[arg-type]  # a fake of Kafka
    stop = asyncio.Event()
    running = asyncio.create_task(indexer.run(follow=True, stop=stop))
    for _ in range(200):
        if store.count() == len(records):
            break
        await asyncio.sleep(0.01)
    assert store.count() == len(records)
    kafka.log = kafka.log[:5]  # the topic recreated, or restored, under it
    with pytest.raises(AuditError, match="but the topic ends at offset 5: Kafka was restored"):
        await asyncio.wait_for(running, timeout=10)
    assert store.offsets(TOPIC) == {0: len(records)}
    assert store.refused_counts() == []


async def test_a_topic_that_reaches_the_index_is_read_on_as_before(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    """The check refuses only a topic that ends before the index: at its end, all is well."""
    records = worker_chain(linker, keys)
    kafka = FakeKafka(on_topic(records))
    await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    again = await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    assert (again.indexed, again.breaks, store.count()) == (0, [], len(records))


class _Stalled(FakeConsumer):
    """A partition whose leader went away after ``upto`` records: fetches come back empty."""

    upto = 3  # the first checkpoint and what it signs

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        return await super().getmany(*tps, max_records=min(max_records, self.upto - self.at), **kw)


class _StalledKafka(FakeKafka):
    def consumer(self, **_: Any) -> FakeConsumer:
        return _Stalled(self)


async def test_an_index_run_to_the_end_that_stops_short_says_so_and_keeps_what_it_read(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    """Review s43r1: ``--once`` ended after 30 empty fetches as if up to date."""
    records, _, _ = quiet_chain(keys)
    kafka = _StalledKafka(on_topic(records))
    with pytest.raises(TransportError) as err:
        await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    stalled = f"indexing {TOPIC}: no further for 30 fetches, short of its end"
    assert str(err.value).startswith(stalled)
    assert store.offsets(TOPIC) == {0: _Stalled.upto}
    assert store.count() == _Stalled.upto


class _PastAborted(FakeConsumer):
    """Offsets 3-202 are an aborted transaction's: fetches hand out nothing but move on."""

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        if 3 <= self.at < 203:
            self.at += 1
            return {}
        if self.at < 3:  # the records before the gap, then the gap
            max_records = min(max_records, 3 - self.at)
        return await super().getmany(*tps, max_records=max_records, **kw)


class _PastAbortedKafka(FakeKafka):
    def consumer(self, **_: Any) -> FakeConsumer:
        return _PastAborted(self)


async def test_fetches_that_move_on_without_records_are_no_stall(
    store: AuditStore, keys: FileKeyStore, verifier: Verifier
) -> None:
    records, _, _ = quiet_chain(keys)
    log = [m if m.offset < 3 else m._replace(offset=m.offset + 200) for m in on_topic(records)]
    await Indexer(store, verifier, _PastAbortedKafka(log), topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka
    assert store.offsets(TOPIC) == {0: len(records) + 200}
    assert store.count() == len(records)
