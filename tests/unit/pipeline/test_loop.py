"""The transactional loop's own logic, over fake Kafka clients and a real processor.

The real broker is exercised end to end in tests/e2e; these pin what is hard to provoke
there: a partition lost between fetch and processing, a partition taken back, and a stop
while a commit is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditRecord
from broker.config import KafkaSettings
from broker.kafka import KafkaClients, TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId, WorkerState
from broker.pipeline._view import StateView
from broker.topics import AUDIT, CONSENT, SCHEMA_CONSENT, STATE, deliver, ingress
from tests.unit.pipeline.test_processor import _consent, incident, seal_as

TP = TopicPartition(ingress("wmp"), 0)
AT_LOOP = datetime(2026, 11, 22, 8, tzinfo=UTC)  # the loop's clock in these tests


@pytest.fixture(autouse=True)
def _lag_is_read() -> Iterator[None]:
    """Every loop here reads its lag gauge: a fake short of what it asks (as this one once
    was of ``last_poll_timestamp``) fails the test instead of logging a warning unseen."""
    with capture_logs() as logs:
        yield
    assert [e for e in logs if e["event"] == "consumer_lag_unread"] == []


def _messages(keys: FileKeyStore, first: int, count: int) -> list[Any]:
    out = []
    for offset in range(first, first + count):
        event = incident()
        value, headers = seal_as(keys, "wmp", event, topic=ingress("wmp"))
        out.append(SimpleNamespace(topic=TP.topic, partition=0, offset=offset, value=value,
                                   headers=headers, timestamp=0,
                                   key=event["event_id"].encode()))  # fmt: skip
    return out


class _Consumer:
    """Serves queued batches, then idles; ``on_idle`` runs at the first idle fetch."""

    def __init__(
        self, batches: list[list[Any]], on_idle: Callable[[], None], *, assigned: bool = False
    ) -> None:
        self.batches = batches
        self.on_idle = on_idle
        self.assigned = {TP} if assigned else set()  # not assigned: as mid-rebalance
        self.seeks: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.group_commits: list[dict[TopicPartition, int]] = []
        self.next: dict[TopicPartition, int] = {}  # the positions getmany moved

    async def getmany(
        self,
        *partitions: TopicPartition,  # noqa: ARG002  # aiokafka's signature
        timeout_ms: int,
        max_records: int,  # noqa: ARG002  # aiokafka's signature
    ) -> dict[TopicPartition, list[Any]]:
        if self.batches:
            batch = self.batches.pop(0)
            if batch:
                self.next[TP] = batch[-1].offset + 1
            return {TP: batch}
        self.on_idle()
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset
        self.next[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.next.get(tp, 0)

    def last_poll_timestamp(self, tp: TopicPartition) -> float:  # noqa: ARG002  # aiokafka's
        return time.time() * 1000  # fetched all along

    def last_stable_offset(self, tp: TopicPartition) -> int:
        return self.highwater(tp)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def partitions_for_topic(self, topic: str) -> set[int]:  # noqa: ARG002  # aiokafka's
        return {0}

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)  # no consent records anywhere

    def highwater(self, tp: TopicPartition) -> int:
        if tp not in self.assigned:
            raise AssertionError("aiokafka asserts the partition is assigned")
        return 4

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.group_commits.append(dict(offsets))

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(
        self,
        *,
        key: bytes | None,
        value: bytes,
        timestamp: None,  # noqa: ARG002  # aiokafka's signature
        headers: Any,  # noqa: ARG002  # aiokafka's signature
    ) -> bool:
        self.records.append((key, value))
        return True

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """Records each committed transaction's records; the first commit takes a while."""

    def __init__(self) -> None:
        self.transactions: list[list[tuple[str, bytes | None, bytes]]] = []
        self._open: list[tuple[str, bytes | None, bytes]] = []

    async def begin_transaction(self) -> None:
        self._open = []

    def create_batch(self) -> _Batch:
        return _Batch()

    async def partitions_for(self, topic: str) -> set[int]:  # noqa: ARG002  # aiokafka's signature
        return {0}

    async def send_batch(self, builder: _Batch, topic: str, partition: int) -> None:  # noqa: ARG002  # aiokafka's signature
        self._open += [(topic, key, value) for key, value in builder.records]

    async def commit_transaction(self) -> None:
        if not self.transactions:
            await asyncio.sleep(0.2)  # the stop arrives while this commit is in flight
        self.transactions.append(self._open)

    async def abort_transaction(self) -> None:
        self._open = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class _Clients(KafkaClients):
    """The seam, handing out the fakes instead of aiokafka's clients."""

    def __init__(self, consumer: _Consumer, producer: _Producer) -> None:
        super().__init__(KafkaSettings(bootstrap="fake:9092"))
        self.fake_consumer, self.fake_producer = consumer, producer
        self.asked: list[tuple[str, ...]] = []

    def transactional_producer(self, transactional_id: str, client_id: str, **_: Any) -> Any:
        self.asked.append(("producer", transactional_id, client_id))
        return self.fake_producer

    def consumer(self, *topics: str, client_id: str, **kwargs: Any) -> Any:
        self.asked.append(("consumer", *topics, client_id, kwargs["group"]))
        return self.fake_consumer

    def subscribe(self, consumer: Any, pattern: str, listener: Any) -> None:
        assert consumer is self.fake_consumer
        assert isinstance(listener, TransactionalLoop)
        self.asked.append(("subscribe", pattern))


class _Handover:
    """The group's committed view, with no other worker in it."""

    def __init__(self) -> None:
        self.view = StateView()
        self.catch_ups = 0

    async def caught_up(self) -> None:
        self.catch_ups += 1

    async def moved(self, within: float) -> None:
        await asyncio.sleep(within)

    def check(self) -> None:
        pass


class _Opened(list[Processor]):
    """The processors the loop opened tasks with, in order."""


async def _loop(
    make_processor: Callable[..., Processor], consumer: _Consumer, producer: _Producer
) -> tuple[TransactionalLoop, _Opened, _Handover]:
    clients = _Clients(consumer, producer)
    handover, opened = _Handover(), _Opened()

    def open_task(task: TaskId, state: WorkerState) -> Any:
        assert state.task == task
        processor = make_processor(state=state)
        opened.append(processor)
        return processor, processor.policy_loaded(processor.services.policy, source="test")

    loop = TransactionalLoop(clients, client_id="c", clock=lambda: AT_LOOP, handover=handover,
                             open_task=open_task, max_batch=10)  # fmt: skip
    await loop.start()
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    assert clients.asked == [
        ("consumer", "c", loop.group), ("subscribe", loop.pattern),
        ("producer", "accord-worker.accord.ingress.wmp-0", "c"),  # fences the last owner
    ]  # fmt: skip
    assert handover.catch_ups == 1  # and only then reads the partition's state
    return loop, opened, handover


async def test_records_fetched_before_their_partition_was_lost_are_not_processed(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Its next owner processes them from what committed; this worker must not as well."""
    consumer = _Consumer([_messages(pipeline_keys, 40, 3)], on_idle=lambda: None)
    producer = _Producer()
    loop, opened, _ = await _loop(make_processor, consumer, producer)
    batch = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    await loop.on_partitions_revoked([TP])
    await loop._process(consumer, batch, asyncio.Event())  # type: ignore[arg-type]  # a fake
    assert loop.assigned == 0
    assert opened[0].services.state.fresh == set()  # nothing opened, nothing marked
    assert producer.transactions == []


async def test_a_partition_taken_back_starts_again_from_what_committed(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Given up with work pending, taken back: a new task from the committed view, its
    chain resumed at the committed head, its position at the committed offset."""
    consumer = _Consumer([], on_idle=lambda: None, assigned=True)  # as in aiokafka's callback
    loop, opened, handover = await _loop(make_processor, consumer, _Producer())
    task = TaskId(TP.topic, TP.partition)
    handover.view.tasks[task].offset = 17
    handover.view.tasks[task].processed.add("e-committed")
    await loop.on_partitions_revoked([TP])
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    assert len(opened) == 2
    assert consumer.seeks == {TP: 17}
    assert consumer.paused == set()  # paused while its task started, then let go
    assert opened[1].services.state.seen("e-committed")


async def test_a_stop_during_a_commit_still_commits_the_rest_with_the_chain_head(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Every transaction that carries audit records ends with the matching head entry."""
    stop = asyncio.Event()
    consumer = _Consumer(
        [_messages(pipeline_keys, 0, 2), _messages(pipeline_keys, 2, 2)], on_idle=stop.set
    )
    producer = _Producer()
    loop, opened, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    [processor] = opened

    # The task's opening (the bundle in force, on its chain), then what was pending at the stop.
    assert len(producer.transactions) == 2
    for records in producer.transactions:
        audit = [AuditRecord.model_validate_json(v) for t, _, v in records if t == AUDIT]
        heads = [v for t, k, v in records if t == STATE and k and k.startswith(b"h:")]
        offsets = {k: v for t, k, v in records if t == STATE and k and k.startswith(b"o:")}
        assert audit
        assert len(heads) == 1
        assert heads[0] == (f'{{"seq": {audit[-1].seq}, "hash": "{audit[-1].hash}"}}'.encode())
    first = AuditRecord.model_validate_json(producer.transactions[0][0][2])
    assert (first.kind.value, first.seq) == ("policy_loaded", 0)
    assert offsets == {f"o:{TP.topic}:0".encode(): b"4"}  # with the offsets they consumed
    assert processor.outbox.chain.next_seq == audit[-1].seq + 1


async def test_the_groups_offsets_follow_committed_transactions_and_end_current(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """For tools that read a group's lag: never ahead of a commit, current after a stop."""
    stop = asyncio.Event()
    consumer = _Consumer(
        [_messages(pipeline_keys, 0, 2), _messages(pipeline_keys, 2, 2)],
        on_idle=stop.set,
        assigned=True,
    )
    producer = _Producer()
    loop, _, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    committed = [
        int(v) for records in producer.transactions for t, k, v in records
        if t == STATE and k == f"o:{TP.topic}:0".encode()
    ]  # fmt: skip
    assert committed == sorted(set(committed))
    assert committed[-1] == 4
    assert consumer.group_commits  # reported
    assert all(c[TP] in committed for c in consumer.group_commits)  # only committed offsets
    assert consumer.group_commits[-1] == {TP: 4}  # and current once stopped


class _FirstCommitUntil(_Producer):
    """Its first commit ends only when ``until`` is set."""

    def __init__(self, until: asyncio.Event) -> None:
        super().__init__()
        self.until = until

    async def commit_transaction(self) -> None:
        if not self.transactions:
            await self.until.wait()
        self.transactions.append(self._open)


async def test_a_commit_started_as_the_stop_arrives_still_ends_the_groups_offsets_current(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The opening commit ends with the stop, so the commit of every record starts in the round
    that sees the stop: its offset is the one the last report must carry. (A loaded machine
    gave the test above this order once, when its slow commit ended mid-batch.)"""
    stop, idle = asyncio.Event(), asyncio.Event()

    def on_idle() -> None:
        stop.set()
        idle.set()

    consumer = _Consumer(
        [_messages(pipeline_keys, 0, 2), _messages(pipeline_keys, 2, 2)],
        on_idle=on_idle,
        assigned=True,
    )
    producer = _FirstCommitUntil(idle)
    loop, _, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    committed = [
        int(v) for records in producer.transactions for t, k, v in records
        if t == STATE and k == f"o:{TP.topic}:0".encode()
    ]  # fmt: skip
    assert committed == [4]  # all four records in the commit the stop's round started
    assert consumer.group_commits == [{TP: 4}]


async def test_records_below_the_committed_offset_are_skipped_whatever_the_fetch_returns(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """aiokafka may fetch a newly assigned partition from the group's (older) offset before
    the listener's seek takes hold: those records committed already, and would be replays."""
    consumer = _Consumer([_messages(pipeline_keys, 40, 4)], on_idle=lambda: None)
    loop, _, handover = await _loop(make_processor, consumer, _Producer())
    handover.view.tasks[TaskId(TP.topic, TP.partition)].offset = 42
    await loop.on_partitions_revoked([TP])
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    batch = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    await loop._process(consumer, batch, asyncio.Event())  # type: ignore[arg-type]  # a fake
    [task] = loop._tasks.values()
    assert task.pending.stamps == [0, 0]  # 42 and 43 only
    assert task.pending.next_offset == 44


async def test_a_withdrawal_notice_leaves_a_partition_with_no_record_pending(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The hub got a record under consent; the family withdraws it; nothing else arrives: the
    task commits the notice at once, not at its next record (nor only at the stop)."""
    stop = asyncio.Event()
    producer = _Producer()
    idle: list[int] = []
    before_stop: list[list[tuple[str, bytes | None, bytes]]] = []

    def notices(transactions: list[list[tuple[str, bytes | None, bytes]]]) -> list[bytes]:
        return [k for records in transactions for t, k, _ in records
                if t == deliver("cog-tipton") and k and k.startswith(b"withdrawal-")]  # fmt: skip

    def on_idle() -> None:
        idle.append(1)
        if len(idle) == 1:  # what the worker learnt meanwhile, as its tasks would file it
            [processor] = opened
            for state, at in (("given", "2026-10-01T09:00:00Z"), (None, None),
                              ("withdrawn", "2026-11-01T15:30:00Z")):  # fmt: skip
                if state is None:
                    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=TP.topic)
                    processor.handle(TP.topic, 0, 90, value, headers, at=AT_LOOP)
                    continue
                value, headers = seal_as(pipeline_keys, "sandwell-coord", _consent(state, at),
                                         topic=CONSENT, schema=SCHEMA_CONSENT)  # fmt: skip
                processor.handle(CONSENT, 0, 0, value, headers, at=AT_LOOP)
            assert processor.recall_due()
        elif len(idle) == 4:
            before_stop.extend(producer.transactions)
            stop.set()

    consumer = _Consumer([], on_idle=on_idle)
    loop, opened, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    assert len(notices(before_stop)) == 1
    assert len(notices(producer.transactions)) == 1  # and not again at the stop


async def test_the_wait_before_processing_and_each_transactions_time_are_measured(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """The parts of the latency the worker does not spend processing, for operators: from a
    record's timestamp to its processing, and each commit from its beginning to its end."""
    stop = asyncio.Event()
    msgs = _messages(pipeline_keys, 0, 4)
    for m in msgs:  # published 300 ms before the worker reads them
        m.timestamp = int(time.time() * 1000) - 300
    consumer = _Consumer([msgs[:2], msgs[2:]], on_idle=stop.set)
    producer = _Producer()  # its first commit takes 200 ms
    loop, opened, _ = await _loop(make_processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    registry = opened[0].outbox.metrics.registry

    def bucket(name: str, le: str) -> float | None:
        return registry.get_sample_value(f"{name}_bucket", {"le": le})

    wait = "accord_pipeline_wait_seconds"
    assert registry.get_sample_value(f"{wait}_count") == 4
    assert bucket(wait, "0.25") == 0  # seconds, from the record's own timestamp
    assert bucket(wait, "2.5") == 4
    spent = "accord_transaction_seconds"
    assert registry.get_sample_value(f"{spent}_count") == len(producer.transactions) == 2
    assert bucket(spent, "0.15") == 1  # the slow first commit is not among the quick


async def test_records_fetched_before_their_partition_was_taken_back_are_not_processed(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Lost and taken back between a fetch and its processing (a rebalance at any await, the
    consent wait's included): the new task starts at the committed offset, and the consumer
    reads from there again. The records in hand came after work the loss dropped: processing
    them would skip that work for good."""
    consumer = _Consumer([_messages(pipeline_keys, 40, 3)], on_idle=lambda: None, assigned=True)
    loop, _, handover = await _loop(make_processor, consumer, _Producer())
    batch = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    handover.view.tasks[TaskId(TP.topic, TP.partition)].offset = 30  # 30-39 were pending
    await loop.on_partitions_revoked([TP])
    await loop.on_partitions_assigned([TP])
    await loop.opened()
    await loop._process(consumer, batch, asyncio.Event())  # type: ignore[arg-type]  # a fake
    [task] = loop._tasks.values()
    assert consumer.seeks == {TP: 30}
    assert task.pending.stamps == []
    assert task.pending.next_offset is None
    assert task.position == 30  # where the consumer reads from again
