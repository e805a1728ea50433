"""``accord_consumer_lag``: every held partition's waiting records, summed per topic.

It was set per partition on each commit, so the last partition to commit overwrote the
others, and a partition paused (its sender over budget) or wedged, which never commits,
was never counted: the gauge read 0 with 376 records waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
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
    """Partition 0 commits with lag 0, partition 1 (paused) never commits, 300 behind: the
    topic's gauge is 300, not 0; revoked, the topic leaves the gauge."""
    consumer = _Kafka([_messages(pipeline_keys, 0, 3)])
    metrics = Metrics(CollectorRegistry())

    def open_task(task: TaskId, state: WorkerState) -> Any:
        processor = make_processor(state=state)
        processor.outbox.metrics = metrics  # one registry, as in a worker
        return processor, processor.policy_loaded(processor.services.policy, source="test")

    loop = TransactionalLoop(_Clients(consumer, _Producer()), client_id="c", clock=lambda: AT_LOOP,
                             handover=_Handover(), open_task=open_task, max_batch=10)  # fmt: skip
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
