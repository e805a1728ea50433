"""A topic restored from a backup older than the index and written past the index's offsets
since (the workers started first) is as long as the index expects, but holds other messages
at the offsets the index read: the indexer compares its newest held messages with the topic's
and refuses it in one line, at start and under a running indexer. Offsets retention or
compaction removed are no alarm."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

import broker.governance._index as index_module
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.errors import AuditError
from broker.governance import AuditStore, Indexer, IndexSummary, _index_restore
from broker.governance._index_restore import Compared, compare
from broker.governance._store import message_digest
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import FakeConsumer, FakeKafka, Msg, Part, on_topic, worker_chain

TOPIC = "accord.audit"


async def _index(store: AuditStore, verifier: Verifier, kafka: FakeKafka) -> Any:
    return await Indexer(store, verifier, kafka, topic=TOPIC).run(follow=False)  # type: ignore[arg-type]  # a fake of Kafka


def _restored(original: list[Msg], kept: int, linker: Linker, keys: FileKeyStore) -> list[Msg]:
    """Kafka from a backup holding the first ``kept`` messages, then a new chain's records
    written past the index's offsets by the workers."""
    return original[:kept] + on_topic(worker_chain(linker, keys, chain="worker:w2"), start=kept)


def _left_as_it_was(store: AuditStore, offsets: dict[int, int], count: int) -> None:
    assert store.offsets(TOPIC) == offsets
    assert store.count() == count
    assert store.refused_counts() == []
    assert all(h.broken_seq is None for h in store.heads().values())
    assert "worker:w2" not in store.heads()


def test_the_newest_held_offset_still_on_the_topic_decides() -> None:
    held = [(9, message_digest(b"nine")), (7, message_digest(b"seven"))]
    assert compare(held, {9: b"nine", 7: b"other"}) == Compared(9, same=True)
    assert compare(held, {7: b"seven"}) == Compared(7, same=True)  # 9 compacted away
    assert compare(held, {7: b"other"}) == Compared(7, same=False)
    assert compare(held, {8: b"eight"}) == Compared()  # nothing held is there: no verdict


def test_a_record_is_compared_by_its_canonical_bytes_and_anything_else_by_its_own(
    linker: Linker, keys: FileKeyStore
) -> None:
    """As the indexer keeps them: a record's body (``audit_records``), a refusal's digest."""
    rec = worker_chain(linker, keys)[0]
    held = [(0, message_digest(rec.to_bytes()))]
    spaced = rec.to_bytes().replace(b",", b", ")  # the same record, not canonically written
    assert compare(held, {0: spaced}) == Compared(0, same=True)
    assert compare([(0, message_digest(b"not a record"))], {0: b"not a record"}).same
    assert not compare(held, {0: b"not a record"}).same


async def test_a_topic_restored_older_and_written_past_the_index_is_refused_at_start(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    original = on_topic(worker_chain(linker, keys))
    kafka = FakeKafka(list(original))
    await _index(store, verifier, kafka)
    indexed = store.offsets(TOPIC)
    assert indexed == {0: len(original)}
    kafka.log = _restored(original, 5, linker, keys)
    assert kafka.log[-1].offset + 1 > len(original)  # the topic ends past the index again
    with pytest.raises(AuditError) as err:
        await _index(store, verifier, kafka)
    message = str(err.value)
    assert message.startswith(
        f"the audit index has read {TOPIC} partition 0 up to offset {len(original)}, but the "
        f"message at offset {len(original) - 1} is not the one it read there: Kafka was "
        "restored from a backup older than the index and written to since, or the topic "
        "recreated; nothing was indexed."
    )
    assert message.endswith("(docs/deployment.md, Restore)")
    assert "\n" not in message
    _left_as_it_was(store, indexed, len(original))


async def test_the_same_topic_read_on_after_a_restart_is_not_refused(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    original = on_topic(worker_chain(linker, keys))
    kafka = FakeKafka(list(original))
    await _index(store, verifier, kafka)
    kafka.log += on_topic(worker_chain(linker, keys, chain="worker:w2"), start=len(original))
    summary = await _index(store, verifier, kafka)
    assert (summary.indexed, summary.breaks, dict(summary.refused)) == (len(original), [], {})


async def test_a_refused_message_replaced_by_another_is_seen_too(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    """The newest message the index holds may be one it refused: compared by its digest."""
    records = worker_chain(linker, keys)
    original = [*on_topic(records), Msg(None, b"not a record", 0, len(records))]
    kafka = FakeKafka(list(original))
    await _index(store, verifier, kafka)
    assert store.refused_counts() == [("undecodable", 1)]
    again = await _index(store, verifier, kafka)  # the same message there: read on
    assert (again.indexed, dict(again.refused)) == (0, {})
    kafka.log = [*original[:-1], Msg(None, b"not a record either", 0, len(records))]
    kafka.log += on_topic(worker_chain(linker, keys, chain="worker:w2"), start=len(original))
    with pytest.raises(AuditError, match=f"the message at offset {len(records)} is not the one"):
        await _index(store, verifier, kafka)
    assert store.refused_counts() == [("undecodable", 1)]
    assert store.count() == len(records)


async def test_an_offset_compaction_removed_is_passed_over_for_an_older_one(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    original = on_topic(worker_chain(linker, keys))
    kafka = FakeKafka(list(original))
    await _index(store, verifier, kafka)
    newest = len(original) - 1
    gone = [m for m in original if m.offset != newest]
    later = on_topic(worker_chain(linker, keys, chain="worker:w3"), start=len(original))
    kafka.log = _restored(original, 5, linker, keys)
    kafka.log = [m for m in kafka.log if m.offset != newest]  # and this one removed there
    with pytest.raises(AuditError, match=f"the message at offset {newest - 1} is not the one"):
        await _index(store, verifier, kafka)
    _left_as_it_was(store, {0: len(original)}, len(original))
    kafka.log = gone + later  # the newest indexed gone: no alarm, the one before is the same
    summary = await _index(store, verifier, kafka)
    assert (summary.indexed, summary.breaks, dict(summary.refused)) == (len(later), [], {})


async def test_a_partition_retention_emptied_of_what_the_index_read_is_read_on_and_logged(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    """Nothing left to compare is no evidence of a restore: the indexer says so and reads on."""
    original = on_topic(worker_chain(linker, keys))
    kafka = FakeKafka(list(original))
    await _index(store, verifier, kafka)
    later = worker_chain(linker, keys, chain="worker:w2")
    kafka.log = on_topic(later, start=len(original))  # retention removed all before it
    with capture_logs() as logs:
        summary = await _index(store, verifier, kafka)
    assert (summary.indexed, summary.breaks) == (len(later), [])
    [unchecked] = [e for e in logs if e["event"] == "audit_index_unchecked"]
    assert (unchecked["partition"], unchecked["offset"], unchecked["why"]) == (
        0,
        len(original) - 1,
        "retention",
    )


class _Waiting(FakeConsumer):
    """A fetch that waits, as Kafka's does: a following indexer lets other tasks run."""

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        await asyncio.sleep(0.005)
        return await super().getmany(*tps, max_records=max_records, **kw)


class _Kept(FakeKafka):
    consumers: list[FakeConsumer]

    def consumer(self, **_: Any) -> FakeConsumer:
        made = _Waiting(self)
        self.consumers = [*getattr(self, "consumers", []), made]
        return made


async def test_a_topic_restored_and_written_past_under_a_running_indexer_stops_it(
    store: AuditStore, keys: FileKeyStore, linker: Linker, verifier: Verifier
) -> None:
    """Its position gone from the restored topic, Kafka sets the consumer to the beginning:
    the messages below the stored offsets are not taken before the topic is compared."""
    original = on_topic(worker_chain(linker, keys))
    kafka = _Kept(list(original))
    indexer = Indexer(store, verifier, kafka, topic=TOPIC)  # type: ignore[arg-type]  # a fake of Kafka
    running = asyncio.create_task(indexer.run(follow=True, stop=asyncio.Event()))
    for _ in range(200):
        if store.count() == len(original):
            break
        await asyncio.sleep(0.01)
    assert store.count() == len(original)
    kafka.log = _restored(original, 5, linker, keys)
    kafka.consumers[-1].at = 0  # aiokafka's auto_offset_reset, "earliest"
    with pytest.raises(AuditError, match=f"offset {len(original) - 1} is not the one it read"):
        await asyncio.wait_for(running, timeout=10)
    _left_as_it_was(store, {0: len(original)}, len(original))


class _Stale(_Waiting):
    """Reports, for the one fetch after ``stale_once`` is set, that high watermark (as a
    fetch answered from a replica a step behind may); the last stable offset stays the
    topic's."""

    stale_once: int | None = None
    _reported: int | None = None

    async def getmany(self, *tps: Part, max_records: int, **kw: int) -> dict[Part, list[Msg]]:
        self._reported, self.stale_once = self.stale_once, None
        return await super().getmany(*tps, max_records=max_records, **kw)

    def highwater(self, tp: Part) -> int:
        return super().highwater(tp) if self._reported is None else self._reported

    def last_stable_offset(self, tp: Part) -> int:
        return super().highwater(tp) if self.kafka.stable is None else self.kafka.stable


class _KeptStale(_Kept):
    def consumer(self, **_: Any) -> FakeConsumer:
        made = _Stale(self)
        self.consumers = [*getattr(self, "consumers", []), made]
        return made


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[dict[int, int]]:
    """The stored offsets each comparison of held messages was made against (the check)."""
    made: list[dict[int, int]] = []

    async def check_held(consumer: Any, tps: list[Any], stored: Any, s: AuditStore) -> None:
        made.append(dict(stored))
        await _index_restore.check_held(consumer, tps, stored, s)

    monkeypatch.setattr(index_module, "check_held", check_held)
    return made


async def _until(running: asyncio.Task[Any], done: Callable[[], bool]) -> None:
    for _ in range(300):
        if done() or running.done():
            return
        await asyncio.sleep(0.01)


async def _follow_while(
    store: AuditStore, verifier: Verifier, kafka: _Kept, change: Callable[[], int]
) -> IndexSummary:
    """Index ``kafka`` following it, three messages a fetch; once all of it is indexed,
    ``change`` it (returning how many records the index should then hold) and read on a
    few fetches past those."""
    indexer = Indexer(store, verifier, kafka, topic=TOPIC, max_batch=3)  # type: ignore[arg-type]  # a fake of Kafka
    stop = asyncio.Event()
    running = asyncio.create_task(indexer.run(follow=True, stop=stop))
    await _until(running, lambda: store.offsets(TOPIC) == {0: len(kafka.log)})
    assert store.offsets(TOPIC) == {0: len(kafka.log)}
    count = change()
    await _until(running, lambda: store.count() >= count)
    await asyncio.sleep(0.05)  # fetches past the end take nothing more
    stop.set()
    return await asyncio.wait_for(running, timeout=10)


async def test_a_stale_high_watermark_under_a_running_indexer_is_checked_and_read_on_from(
    store: AuditStore,
    keys: FileKeyStore,
    linker: Linker,
    verifier: Verifier,
    checked: list[dict[int, int]],
) -> None:
    """The check reads the topic again at older offsets; the consumer is put back where the
    fetch left it, so what follows that fetch is neither skipped nor read twice."""
    original = on_topic(worker_chain(linker, keys))
    later = on_topic(worker_chain(linker, keys, chain="worker:w2"), start=len(original))
    kafka = _KeptStale(list(original))

    def written_on() -> int:
        kafka.log += later
        consumer = kafka.consumers[-1]
        assert isinstance(consumer, _Stale)
        consumer.stale_once = 1  # the topic ends before the stored offsets, by this fetch
        return len(original) + len(later)

    summary = await _follow_while(store, verifier, kafka, written_on)
    assert checked[1:] == [{0: len(original)}]  # at start (an empty index), then once
    assert (summary.indexed, summary.duplicates, summary.breaks, dict(summary.refused)) == (
        len(original) + len(later),
        0,
        [],
        {},
    )
    assert store.offsets(TOPIC) == {0: len(original) + len(later)}
    assert store.count() == len(original) + len(later)
    assert store.refused_counts() == []


async def test_a_consumer_gone_back_on_an_unchanged_topic_is_checked_and_read_on_from_the_index(
    store: AuditStore,
    keys: FileKeyStore,
    linker: Linker,
    verifier: Verifier,
    checked: list[dict[int, int]],
) -> None:
    """The messages below the stored offsets are the ones the index read: the indexer reads on
    from its offsets as at start, neither taking them again (its offsets going back, what it
    refused counted twice) nor skipping what was written after them."""
    records = worker_chain(linker, keys)
    original = [*on_topic(records), Msg(None, b"not a record", 0, len(records))]
    later = on_topic(worker_chain(linker, keys, chain="worker:w2"), start=len(original))
    kafka = _Kept(list(original))

    def written_on() -> int:
        kafka.log += later
        kafka.consumers[-1].at = 0  # aiokafka's auto_offset_reset, "earliest"
        return len(records) + len(later)

    summary = await _follow_while(store, verifier, kafka, written_on)
    assert checked[1:] == [{0: len(original)}]
    assert (summary.indexed, summary.duplicates, summary.breaks, dict(summary.refused)) == (
        len(records) + len(later),
        0,
        [],
        {"undecodable": 1},
    )
    assert store.offsets(TOPIC) == {0: len(original) + len(later)}
    assert store.count() == len(records) + len(later)
    assert store.refused_counts() == [("undecodable", 1)]
    assert all(h.broken_seq is None for h in store.heads().values())
