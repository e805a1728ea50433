"""The loop at its edges, over the fakes of test_loop: the slow read past a record aiokafka
cannot parse, and a rebalance at the awaits where one is easy to miss."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId
from broker.topics import CONSENT, SCHEMA_CONSENT
from tests.unit.pipeline.test_loop import (
    AT_LOOP,
    TP,
    _Clients,
    _Consumer,
    _Handover,
    _loop,
    _messages,
    _Producer,
)
from tests.unit.pipeline.test_processor import _consent, seal_as

C = TopicPartition(CONSENT, 0)
_BAD_HEADER = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


class _Unparsable(_Consumer):
    """Its fetches of ``bad`` meet a record aiokafka cannot parse (a non-UTF-8 header key)."""

    def __init__(
        self, batches: list[list[Any]], bad: tuple[TopicPartition, ...], *held: TopicPartition
    ) -> None:
        super().__init__(batches, on_idle=lambda: None, assigned=True)
        self.bad = bad
        self.assigned = set(held)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        if (partitions and partitions == self.bad) or (not partitions and not self.batches):
            raise _BAD_HEADER
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 1 if tp == C else 5 for tp in partitions}  # one consent record, at 0


class _Tolerant(_Clients):
    """The tolerant read serves ``held`` from the positions asked; ``during`` runs first."""

    def __init__(self, consumer: _Consumer, held: dict[TopicPartition, list[Any]]) -> None:
        super().__init__(consumer, _Producer())
        self.held = held
        self.reads: list[dict[TopicPartition, int]] = []
        self.during: Callable[[], Any] | None = None

    async def read_tolerantly(
        self,
        positions: dict[TopicPartition, int],
        *,
        limit: int,  # noqa: ARG002  # KafkaClients.read_tolerantly's signature
    ) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
        self.reads.append(dict(positions))
        if self.during is not None:
            await self.during()
        got = {tp: [m for m in self.held.get(tp, []) if m.offset >= o]
               for tp, o in positions.items()}  # fmt: skip
        got = {tp: m for tp, m in got.items() if m}
        return got, {tp: got[tp][-1].offset + 1 if tp in got else o for tp, o in positions.items()}


def _traced_loop(
    clients: _Clients,
    make_processor: Callable[..., Processor],
    trace: list[str],
    *,
    consent_committed: int = 0,
) -> TransactionalLoop:
    def open_task(task: TaskId, state: Any) -> Any:
        processor = make_processor(state=state)
        handle = processor.handle

        def traced(topic: str, partition: int, offset: int, *a: Any, **k: Any) -> Any:
            trace.append(f"{topic}:{offset}")
            return handle(topic, partition, offset, *a, **k)

        processor.handle = traced  # type: ignore[method-assign]
        return processor, []

    handover = _Handover()
    handover.view.tasks[TaskId(TP.topic, TP.partition)].offset = 0
    handover.view.tasks[TaskId(C.topic, C.partition)].offset = consent_committed
    return TransactionalLoop(clients, client_id="c", clock=lambda: AT_LOOP, handover=handover,
                             open_task=open_task, max_batch=10)  # fmt: skip


async def test_the_consent_waits_slow_read_reads_only_consent_and_skips_no_event(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """It once read every partition: later events were decided inside the wait, with no
    consent check of their own, and the events in hand were then skipped for good."""
    events = _messages(pipeline_keys, 0, 5)
    value, headers = seal_as(pipeline_keys, "sandwell-coord",
                             _consent("given", "2026-10-01T09:00:00Z"),
                             topic=CONSENT, schema=SCHEMA_CONSENT)  # fmt: skip
    consent = SimpleNamespace(topic=CONSENT, partition=0, offset=0, value=value,
                              headers=headers, timestamp=0, key=b"c0")  # fmt: skip
    consumer = _Unparsable([events[:3]], (C,), TP, C)
    clients = _Tolerant(consumer, {C: [consent], TP: events[3:]})
    trace: list[str] = []
    loop = _traced_loop(clients, make_processor, trace)
    await loop.start()
    await loop.on_partitions_assigned([TP, C])
    await loop.opened()
    batch = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    await loop._process(consumer, batch, asyncio.Event())  # type: ignore[arg-type]  # a fake
    assert clients.reads == [{C: 0}]
    assert trace == [f"{CONSENT}:0", f"{TP.topic}:0", f"{TP.topic}:1", f"{TP.topic}:2"]
    assert consumer.seeks[TP] == 0  # where _open put it; 3 and 4 come with the next fetch
    assert loop._tasks[TP].pending.next_offset == 3


async def test_a_slow_read_across_a_take_back_leaves_the_partition_where_the_new_task_starts(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The read rewound from the old task's position: seeking past it, or processing it on
    the new task, would skip the work the old task had pending when it was given up."""
    events = _messages(pipeline_keys, 0, 5)
    consumer = _Unparsable([events[:3]], (), TP)
    clients = _Tolerant(consumer, {TP: events})
    trace: list[str] = []
    loop = _traced_loop(clients, make_processor, trace, consent_committed=1)  # filed by another
    await loop.start()
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    first = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    await loop._process(consumer, first, asyncio.Event())  # type: ignore[arg-type]  # a fake

    async def take_back() -> None:
        await loop.on_partitions_revoked([TP])
        await loop.on_partitions_assigned([TP])
        await loop.opened()

    clients.during = take_back
    second = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    await loop._process(consumer, second, asyncio.Event())  # type: ignore[arg-type]  # a fake
    assert clients.reads == [{TP: 3}]
    assert consumer.seeks[TP] == 0  # the committed offset, as the take-back left it
    assert second == {}
    [task] = loop._tasks.values()
    assert (task.position, task.pending.next_offset) == (0, None)


async def test_a_revocation_while_a_stop_settles_its_commits_does_not_break_the_stop(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """A rolling restart: another worker joins as this one stops. The stop once failed with
    the task dict changed under its loop; now the partition is given up (its pending work
    dropped, for the next owner) and the stop completes."""
    stop = asyncio.Event()
    revoking: list[asyncio.Task[None]] = []

    def on_idle() -> None:
        stop.set()
        asyncio.get_running_loop().call_later(  # while the first commit (200 ms) is in flight
            0.05, lambda: revoking.append(asyncio.create_task(loop.on_partitions_revoked([TP])))
        )

    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=on_idle)
    producer = _Producer()
    loop, _, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    await asyncio.gather(*revoking)
    assert loop.assigned == 0
    assert len(producer.transactions) == 1  # the opening's; the two records were dropped


class _RevokedMidCommit(_Producer):
    """Its second commit is slow, and the group takes the partition while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.revoke: Callable[[], Any] | None = None
        self.stopped_mid_commit = False
        self._committing = False

    async def commit_transaction(self) -> None:
        if self.transactions and self.revoke is not None:
            revoke, self.revoke = self.revoke, None
            asyncio.get_running_loop().call_soon(revoke)
            self._committing = True
            await asyncio.sleep(0.1)
            self._committing = False
        await super().commit_transaction()

    async def stop(self) -> None:
        self.stopped_mid_commit |= self._committing


async def test_a_revocation_during_a_stops_last_commit_waits_for_it(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The last commits are each task's commit in flight: the revocation waits for them
    before it stops the producer."""
    stop = asyncio.Event()
    revoking: list[asyncio.Task[None]] = []
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=stop.set)
    producer = _RevokedMidCommit()
    loop, _, _ = await _loop(make_processor, consumer, producer)
    producer.revoke = lambda: revoking.append(asyncio.create_task(loop.on_partitions_revoked([TP])))
    await asyncio.wait_for(loop.run(stop), timeout=10)
    await asyncio.gather(*revoking)
    assert revoking
    assert len(producer.transactions) == 2
    assert not producer.stopped_mid_commit


async def test_events_wait_while_the_consent_topics_partitions_are_unknown(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """With no consent offsets to wait for, deciding could miss a withdrawal: they wait."""
    known: set[int] = set()

    class Forgetful(_Consumer):
        def partitions_for_topic(self, topic: str) -> set[int]:
            return known if topic == CONSENT else {0}

    consumer = Forgetful([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    events = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    stop = asyncio.Event()
    waiting = asyncio.create_task(loop._process(consumer, events, stop))  # type: ignore[arg-type]  # a fake
    await asyncio.sleep(0.7)
    [task] = loop._tasks.values()
    assert not waiting.done()
    assert task.pending.stamps == []
    known.add(0)  # the metadata is back
    await asyncio.wait_for(waiting, timeout=5)
    assert task.pending.next_offset == 2


async def test_a_partition_given_up_is_no_longer_reported_to_the_group(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Taken back after another worker moved it on, its old offset would take the group's
    committed offset (what lag tools read) backwards until this worker's next commit."""
    stop = asyncio.Event()
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=stop.set, assigned=True)
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    await asyncio.wait_for(loop.run(stop), timeout=10)
    assert loop._report.durable == {TP: 2}
    await loop.on_partitions_revoked([TP])
    assert loop._report.durable == {}


class _Resubscribing(_Consumer):
    """As aiokafka: pausing, resuming or seeking a partition not assigned asserts, and a new
    topic matching the pattern (a new agency) drops the assignment until the rebalance."""

    def __init__(self) -> None:
        super().__init__([], on_idle=lambda: None, assigned=True)

    def new_topic(self) -> None:
        self.assigned = set()

    def _held(self, tps: tuple[TopicPartition, ...]) -> None:
        assert all(tp in self.assigned for tp in tps), "no current assignment"

    def pause(self, *tps: TopicPartition) -> None:
        self._held(tps)
        super().pause(*tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._held(tps)
        super().resume(*tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._held((tp,))
        super().seek(tp, offset)


async def test_a_throttled_sender_due_again_while_a_new_agency_joins_does_not_stop_the_worker(
    make_processor: Callable[..., Processor],
) -> None:
    consumer = _Resubscribing()
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    consumer.pause(TP)
    loop._throttle.paused[TP.topic] = 0.0  # the sender's wait is over
    consumer.new_topic()
    loop._throttle.resume_due(consumer, loop._tasks)  # type: ignore[arg-type]  # a fake
    assert loop._throttle.paused == {}
    await loop.on_partitions_revoked([TP])  # the rebalance the new topic brings
    consumer.assigned = {TP}
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    assert consumer.paused == set()  # the sender goes on
    assert loop.assigned == 1


class _Moving(_Handover):
    """A new agency's topic turns up while a task's handover is awaited."""

    def __init__(self, consumer: _Resubscribing) -> None:
        super().__init__()
        self.consumer = consumer

    async def caught_up(self) -> None:
        await super().caught_up()
        if self.catch_ups == 2:
            self.consumer.new_topic()


async def test_a_new_agency_joining_while_partitions_are_taken_on_does_not_stop_the_worker(
    make_processor: Callable[..., Processor],
) -> None:
    consumer = _Resubscribing()
    loop, opened, _ = await _loop(make_processor, consumer, _Producer())
    moving = _Moving(consumer)
    moving.catch_ups = 1
    moving.view.tasks[TaskId(TP.topic, TP.partition)].offset = 17
    loop.handover = moving
    await loop.on_partitions_revoked([TP])
    await loop.on_partitions_assigned([TP])  # the assignment is dropped at its await
    await loop.opened()
    assert loop._fatal is None
    await loop.on_partitions_revoked([TP])  # the rebalance the new topic brings
    consumer.assigned = {TP}
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    assert loop._fatal is None
    assert consumer.seeks == {TP: 17}
    assert consumer.paused == set()
    assert len(opened) == 3
