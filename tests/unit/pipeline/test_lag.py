"""``accord_consumer_lag``: every held partition's waiting records, summed per topic.

It was set per partition on each commit, so the last partition to commit overwrote the
others, and a partition paused (its sender over budget) or wedged, which never commits,
was never counted: the gauge read 0 with 376 records waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline import _lag as _lag_module
from broker.pipeline._lag import Lag
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId, WorkerState
from broker.topics import CONSENT, ingress
from tests.unit.pipeline.test_loop import (
    AT_LOOP,
    TP,
    _Clients,
    _Consumer,
    _Handover,
    _messages,
    _Producer,
)

P0, P1 = TP, TopicPartition(ingress("wmp"), 1)
OTHER = TopicPartition(ingress("nhs"), 0)


class _Kafka(_Consumer):
    """Partition 0 fetched and committed up to its end; partition 1 paused 300 behind.

    A paused partition is not fetched, so aiokafka's ends for it are those of its last
    fetch response, long ago (a highwater of 5); Kafka's ListOffsets says 400.
    """

    def __init__(self, batches: list[list[Any]]) -> None:
        super().__init__(batches, on_idle=lambda: None, assigned=True)
        self.assigned = {P0, P1}
        self.ends = {P0: 3, P1: 400}  # what ListOffsets answers (read_committed)
        self.positions = {P0: 3, P1: 100}
        self.polled = {P0: time.time() * 1000, P1: time.time() * 1000 - 600_000}
        self.stable = {P0: 3, P1: 5}
        self.asked: list[list[TopicPartition]] = []

    def partitions_for_topic(self, topic: str) -> set[int]:  # noqa: ARG002  # aiokafka's
        return {0, 1}

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "aiokafka asserts the partition is assigned"
        return self.stable[tp]

    def last_stable_offset(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "aiokafka asserts the partition is assigned"
        return self.stable[tp]

    def last_poll_timestamp(self, tp: TopicPartition) -> float:
        assert tp in self.assigned, "aiokafka asserts the partition is assigned"
        self.polled[P0] = time.time() * 1000  # fetched all along
        return self.polled[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if all(tp.topic != CONSENT for tp in partitions):  # not the consent fence's
            self.asked.append(list(partitions))
        return {tp: self.ends.get(tp, 0) for tp in partitions}  # no consent records


def _lag(metrics: Metrics, topic: str = P0.topic) -> float | None:
    return metrics.registry.get_sample_value("accord_consumer_lag", {"topic": topic})


async def _until(check: Callable[[], bool], within: float = 3.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)


async def test_the_gauge_sums_every_held_partition_a_paused_one_too_and_leaves_on_revocation(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Partition 0 commits with lag 0, partition 1 (paused, resuming at 100 as the changelog
    says) never commits, 300 behind: the topic's gauge is 300, not 0; revoked, the topic
    leaves the gauge."""
    consumer = _Kafka([_messages(pipeline_keys, 0, 3)])
    metrics = Metrics(CollectorRegistry())

    def open_task(task: TaskId, state: WorkerState) -> Any:
        processor = make_processor(state=state)
        processor.outbox.metrics = metrics  # one registry, as in a worker
        return processor, processor.policy_loaded(processor.services.policy, source="test")

    handover = _Handover()
    handover.view.tasks[TaskId(P1.topic, P1.partition)].offset = 100
    loop = TransactionalLoop(_Clients(consumer, _Producer()), client_id="c", clock=lambda: AT_LOOP,
                             handover=handover, open_task=open_task, max_batch=10)  # fmt: skip
    await loop.start()
    await loop.on_partitions_assigned([P0, P1])
    await loop.opened()
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    try:
        await _until(lambda: _lag(metrics) == 300)
        assert _lag(metrics) == 300
        assert consumer.asked == [[P1]]  # the stale end asked of Kafka, the fresh one not
        await loop.on_partitions_revoked([P0, P1])
        assert _lag(metrics) is None
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
        await loop.stop()


def _task(metrics: Metrics) -> Any:
    return SimpleNamespace(processor=SimpleNamespace(outbox=SimpleNamespace(metrics=metrics)))


async def test_a_stale_end_is_asked_again_only_every_ask_interval_and_each_topic_is_its_own() -> (
    None
):
    consumer = _Kafka([])
    consumer.assigned = {P0, P1, OTHER}
    consumer.ends[OTHER], consumer.positions[OTHER] = 50, 20
    consumer.polled[OTHER], consumer.stable[OTHER] = time.time() * 1000, 50
    metrics = Metrics(CollectorRegistry())
    tasks = {tp: _task(metrics) for tp in (P0, P1, OTHER)}
    lag = Lag(tasks, lambda: consumer, every=0, ask_every=3600)  # type: ignore[arg-type,return-value]
    for _ in range(3):
        lag.tick()
        assert lag.running is not None
        await lag.running
    assert (_lag(metrics), _lag(metrics, OTHER.topic)) == (300, 30)
    assert consumer.asked == [[P1]]  # once: a paused partition costs one ListOffsets a while
    del tasks[OTHER]
    lag.forget()
    assert (_lag(metrics), _lag(metrics, OTHER.topic)) == (300, None)


async def test_a_transaction_marker_after_the_last_record_is_not_counted_as_lag() -> None:
    """The consumer's position steps over the commit marker; the offset after the last
    record does not, and would leave an idle transactional topic 1 behind for ever (and
    AccordWorkerNotConsuming firing)."""
    consumer = _Kafka([])
    consumer.assigned = {P0}
    consumer.stable[P0] = consumer.positions[P0] = 8  # records 0..6, the marker at 7
    metrics = Metrics(CollectorRegistry())
    tasks = {P0: _task(metrics)}
    tasks[P0].position = 7  # the task's next offset after record 6
    lag = Lag(tasks, lambda: consumer)  # type: ignore[arg-type,return-value]
    lag.tick()
    assert lag.running is not None
    await lag.running
    assert _lag(metrics) == 0


class _Hanging(_Kafka):
    """Kafka does not answer ListOffsets (aiokafka's consumer waits its request timeout)."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked.append(list(partitions))
        await asyncio.Event().wait()
        raise AssertionError("never answered")


async def test_an_unanswered_list_offsets_holds_back_no_fresh_topic_and_is_given_up() -> None:
    """One stale partition's end not answered once froze every topic's gauge for 65 s."""
    consumer = _Hanging([])
    consumer.assigned = {P1, OTHER}
    consumer.ends[OTHER], consumer.positions[OTHER] = 50, 20
    consumer.polled[OTHER], consumer.stable[OTHER] = time.time() * 1000, 50
    metrics = Metrics(CollectorRegistry())
    tasks = {tp: _task(metrics) for tp in (P1, OTHER)}
    lag = Lag(tasks, lambda: consumer, every=0)  # type: ignore[arg-type,return-value]
    lag.tick()
    assert lag.running is not None
    await _until(lambda: _lag(metrics, OTHER.topic) is not None, within=1.0)
    assert _lag(metrics, OTHER.topic) == 30  # written before the answer is waited for
    await asyncio.wait_for(lag.running, timeout=_lag_module.ASK_WITHIN_S + 1)  # given up
    assert consumer.asked == [[P1]]


async def test_records_fetched_and_not_committed_count_as_lag(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """40 contact events fetched (the consumer's position past them) wait for consent that
    Kafka does not confirm: the gauge counts them, 40, not 0 (a topic deleted at lag 0
    would lose them)."""
    async with _waiting_for_consent(make_processor, pipeline_keys) as (loop, metrics):
        loop._lag._every = 0.05
        await _until(lambda: _lag(metrics) == 40)
        assert _lag(metrics) == 40


@contextlib.asynccontextmanager
async def _waiting_for_consent(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> AsyncIterator[tuple[TransactionalLoop, Metrics]]:
    """A loop holding P0, whose 40 events it has fetched and holds, uncommitted, while the
    consent fence's end offsets go unanswered; its metrics."""
    consumer = _ConsentFrozen([_messages(pipeline_keys, 0, 40)])
    consumer.assigned = {P0}
    consumer.stable[P0] = consumer.positions[P0] = 40
    metrics = Metrics(CollectorRegistry())

    def open_task(task: TaskId, state: WorkerState) -> Any:  # the loop's seam
        processor = make_processor(state=state)
        processor.outbox.metrics = metrics
        return processor, []

    handover = _Handover()
    handover.view.tasks[TaskId(P0.topic, P0.partition)].offset = 0
    loop = TransactionalLoop(_Clients(consumer, _Producer()), client_id="c", clock=lambda: AT_LOOP,
                             handover=handover, open_task=open_task, max_batch=50)  # fmt: skip
    await loop.start()
    await loop.on_partitions_assigned([P0])
    await loop.opened()
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    try:
        await asyncio.wait_for(consumer.consent_asked.wait(), timeout=5)
        yield loop, metrics
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
        await loop.stop()


class _ConsentFrozen(_Kafka):
    """The consent fence's end offsets are never answered: the events wait for ever."""

    def __init__(self, batches: list[list[Any]]) -> None:
        super().__init__(batches)
        self.consent_asked = asyncio.Event()

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if any(tp.topic == CONSENT for tp in partitions):
            self.consent_asked.set()
            await asyncio.Event().wait()
        return await super().end_offsets(partitions)


async def test_a_partition_whose_position_is_not_known_is_not_measured() -> None:
    """aiokafka's position() of a partition being reset takes the group's pending error
    (an authorization failure, say) that the loop's fetch must raise: such a partition is
    neither asked its position nor its end."""

    class _Unknown(_Kafka):
        async def position(self, tp: TopicPartition) -> int:
            assert tp != P1, "position() asked while the loop does not know it"
            return await super().position(tp)

    consumer = _Unknown([])
    metrics = Metrics(CollectorRegistry())
    tasks = {tp: _task(metrics) for tp in (P0, P1)}
    lag = Lag(tasks, lambda: consumer, uncommitted=lambda tp: None if tp == P1 else 0)  # type: ignore[arg-type,return-value]
    lag.tick()
    assert lag.running is not None
    with capture_logs() as logs:
        await lag.running
    assert [e for e in logs if e["event"] == "consumer_lag_unread"] == []
    # Nor is its topic written as the sum of the rest (review s43r6): no value, not 0.
    assert (_lag(metrics), consumer.asked) == (None, [])


async def test_an_empty_new_partition_reads_0_once_fetched_and_is_not_measured_before(
    make_processor: Callable[..., Processor],
) -> None:
    """No changelog offset and no record: the loop never learns its position from a record,
    yet once aiokafka has fetched it (its position reset) its topic reads 0, not nothing (an
    operator waits for 0 before deleting a topic); before that it is not measured."""
    consumer = _Kafka([])
    consumer.assigned = {P1}
    consumer.stable[P1] = consumer.positions[P1] = 0

    def open_task(task: TaskId, state: WorkerState) -> Any:  # the loop's seam
        return make_processor(state=state), []

    loop = TransactionalLoop(_Clients(consumer, _Producer()), client_id="c", clock=lambda: AT_LOOP,
                             handover=_Handover(), open_task=open_task, max_batch=10)  # fmt: skip
    await loop.start()
    await loop.on_partitions_assigned([P1])
    await loop.opened()
    try:
        consumer.polled[P1] = None  # type: ignore[assignment]  # not fetched yet
        assert loop._uncommitted(P1) is None
        consumer.polled[P1] = time.time() * 1000
        assert loop._uncommitted(P1) == 0
    finally:
        await loop.stop()


class _SlowAsk(_Kafka):
    """ListOffsets (for a stale partition of another topic) answers after 0.3 s."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        await asyncio.sleep(0.3)
        return await super().end_offsets(partitions)


async def test_records_fetched_while_a_list_offsets_waits_are_still_counted() -> None:
    """Review s43r6: the held records were read before the wait and the positions after it,
    so a fetch in between moved the position past records the count had not seen: 0."""
    consumer = _SlowAsk([])
    consumer.assigned = {P0, OTHER}
    consumer.positions[P0], consumer.stable[P0] = 0, 40
    consumer.positions[OTHER] = 20
    consumer.polled[OTHER] = time.time() * 1000 - 600_000  # paused, its end stale: asked
    uncommitted = {P0: 0, OTHER: 0}
    metrics = Metrics(CollectorRegistry())
    tasks: dict[Any, Any] = {tp: _task(metrics) for tp in (P0, OTHER)}
    lag = Lag(tasks, lambda: consumer, every=0, uncommitted=uncommitted.__getitem__)  # type: ignore[arg-type]
    lag.tick()
    await asyncio.sleep(0.1)  # the fresh topic written, the ListOffsets under way
    assert _lag(metrics) == 40
    consumer.positions[P0] = 40  # the loop fetched the 40: they wait for consent
    uncommitted[P0] = 40
    assert lag.running is not None
    await lag.running
    assert _lag(metrics) == 40


async def test_a_topic_with_a_held_partition_not_measured_has_no_value_not_a_partial_sum() -> None:
    """Review s43r6: P1 300 behind, its position not known (new to the changelog, paused at
    take-on): the topic read 0, which tells an operator it may be deleted."""
    consumer = _Kafka([])
    metrics = Metrics(CollectorRegistry())
    tasks: dict[Any, Any] = {tp: _task(metrics) for tp in (P0, P1)}
    lag = Lag(tasks, lambda: consumer, uncommitted=lambda tp: None if tp == P1 else 0)  # type: ignore[arg-type]
    lag.tick()
    assert lag.running is not None
    await lag.running
    assert _lag(metrics) is None


async def test_mid_revocation_a_partition_s_fetched_records_are_not_counted_as_none(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Review s43r6: the revocation forgets the committed offsets first and waits before the
    tasks leave; meanwhile 40 fetched, uncommitted records read as 0. Now not known: the
    topic is not measured until the partition is settled either way."""
    async with _waiting_for_consent(make_processor, pipeline_keys) as (loop, _):
        await _until(lambda: loop._uncommitted(P0) == 40)
        assert loop._uncommitted(P0) == 40
        await loop._report.forget({P0})  # the revocation's first step
        assert loop._uncommitted(P0) is None


class _Unanswered(_Kafka):
    fail = False

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.fail:
            raise TimeoutError
        return await super().end_offsets(partitions)


async def test_a_paused_partition_kafka_gives_no_end_for_is_not_measured_with_an_old_one() -> None:
    """Review s43r8: the last answer's end stood for as long as Kafka did not answer, so a
    paused partition read 0 while 60 records arrived on it."""
    consumer = _Unanswered([])
    consumer.assigned = {P1}
    consumer.positions = {P1: 40}
    consumer.stable = {P1: 40}
    consumer.ends = {P1: 40}
    consumer.polled = {P1: time.time() * 1000 - 600_000}  # paused: its fetched end is stale
    metrics = Metrics(CollectorRegistry())
    tasks: dict[Any, Any] = {P1: _task(metrics)}
    lag = Lag(tasks, lambda: consumer, every=0, ask_every=0, uncommitted=lambda _: 0)  # type: ignore[arg-type]
    lag.tick()
    assert lag.running is not None
    await lag.running
    assert _lag(metrics) == 0  # true: nothing waits
    consumer.ends[P1] = consumer.stable[P1] = 100  # 60 arrive on the paused partition
    consumer.fail = True
    for _ in range(3):
        lag.tick()
        await lag.running
    assert _lag(metrics) is None
