"""Taking partitions on, over the fakes of test_loop with producers whose start takes a
while: the group listener returns at once, the producers start together (a bounded number at
a time), and an opening that fails, is revoked or is stopped leaves no producer unstopped.

aiokafka sends no heartbeat while the listener runs: a listener that started 72 producers
(the example bundle's partitions) outlasted the group's session on the demo's busy event
loop, and the worker was dropped from its group every ~20 s, for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from broker.errors import TransportError
from broker.kafka import TopicPartition
from broker.pipeline import _tasks
from broker.pipeline._group import GroupMembership
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId, WorkerState
from broker.pipeline._tasks import STARTS_AT_ONCE
from broker.topics import ingress
from tests.unit.pipeline.test_loop import AT_LOOP, _Clients, _Consumer, _Handover, _Producer

PARTITIONS = [TopicPartition(ingress(f"agency{i:02}"), 0) for i in range(30)]


class _SlowProducer(_Producer):
    """A transactional producer whose start (connection, login, InitProducerId) takes
    ``delay``; ``fail`` makes it fail instead, after the delay."""

    def __init__(self, gauge: _Gauge, delay: float, *, fail: bool = False) -> None:
        super().__init__()
        self.gauge, self.delay, self.fail = gauge, delay, fail
        self.started = self.stopped = self.start_cancelled = False

    async def start(self) -> None:
        self.gauge.now += 1
        self.gauge.most = max(self.gauge.most, self.gauge.now)
        try:
            await asyncio.sleep(self.delay)
            if self.fail:
                raise KafkaConnectionError("refused")
            self.started = True
        except asyncio.CancelledError:
            self.start_cancelled = True
            raise
        finally:
            self.gauge.now -= 1

    async def stop(self) -> None:
        self.stopped = True


class _Gauge:
    """How many starts run at once, and the most that ever did."""

    def __init__(self) -> None:
        self.now = self.most = 0


class _Many(_Clients):
    """A producer of its own per partition; the ``failing``-th one made fails to start."""

    def __init__(self, consumer: _Consumer, delay: float, failing: int | None = None) -> None:
        super().__init__(consumer, _Producer())
        self.gauge = _Gauge()
        self.delay, self.failing = delay, failing
        self.made: list[_SlowProducer] = []
        self.options: dict[str, Any] = {}

    def transactional_producer(self, *_: str, **__: Any) -> Any:
        fail = len(self.made) == self.failing
        self.made.append(_SlowProducer(self.gauge, self.delay, fail=fail))
        return self.made[-1]

    def consumer(self, *topics: str, client_id: str, **kwargs: Any) -> Any:
        self.options = kwargs
        return super().consumer(*topics, client_id=client_id, **kwargs)

    def unstopped(self) -> list[_SlowProducer]:
        return [p for p in self.made if not p.stopped]


async def _loop(
    make_processor: Callable[..., Processor], delay: float, failing: int | None = None
) -> tuple[TransactionalLoop, _Many, _Consumer]:
    consumer = _Consumer([], on_idle=lambda: None)
    consumer.assigned = set(PARTITIONS)
    clients = _Many(consumer, delay, failing)
    processor = make_processor()

    def open_task(task: TaskId, state: WorkerState) -> Any:  # OpenTask's signature
        return processor, []

    loop = TransactionalLoop(clients, client_id="c", clock=lambda: AT_LOOP, handover=_Handover(),
                             open_task=open_task, max_batch=10)  # fmt: skip
    await loop.start()
    return loop, clients, consumer


async def test_the_listener_returns_at_once_and_the_partitions_wait_paused_for_their_tasks(
    make_processor: Callable[..., Processor],
) -> None:
    loop, clients, consumer = await _loop(make_processor, delay=0.3)
    began = time.monotonic()
    await loop.on_partitions_assigned(PARTITIONS)
    assert time.monotonic() - began < 0.1  # aiokafka heartbeats again from here
    assert consumer.paused == set(PARTITIONS)  # nothing is fetched for them meanwhile
    assert loop.assigned == 0
    await loop.opened()
    assert loop.assigned == len(PARTITIONS)
    assert consumer.paused == set()
    assert all(p.started for p in clients.made)
    await loop.stop()
    assert clients.unstopped() == []


async def test_an_assignments_producers_start_together_a_bounded_number_at_a_time(
    make_processor: Callable[..., Processor],
) -> None:
    loop, clients, _ = await _loop(make_processor, delay=0.1)
    began = time.monotonic()
    await loop.on_partitions_assigned(PARTITIONS)
    await loop.opened()
    took = time.monotonic() - began
    assert 1 < clients.gauge.most <= STARTS_AT_ONCE
    assert took < len(PARTITIONS) * 0.1 / 2  # one after another would take 3 s
    await loop.stop()


async def test_a_producer_that_fails_to_start_ends_the_worker_and_every_producer_is_stopped(
    make_processor: Callable[..., Processor],
) -> None:
    loop, clients, consumer = await _loop(make_processor, delay=0.1, failing=3)
    await loop.on_partitions_assigned(PARTITIONS)
    await loop.opened()
    assert isinstance(loop._fatal, TransportError)  # the loop raises it: the worker stops
    assert loop.assigned == 0
    assert consumer.paused == set(PARTITIONS)  # none was processed without its task
    assert clients.unstopped() == []
    assert any(p.start_cancelled for p in clients.made)  # not left starting after the stop
    assert clients.gauge.now == 0


async def test_a_revocation_during_the_opening_stops_what_it_started_and_opens_nothing(
    make_processor: Callable[..., Processor],
) -> None:
    loop, clients, _ = await _loop(make_processor, delay=0.2)
    await loop.on_partitions_assigned(PARTITIONS)
    await asyncio.sleep(0.3)  # some started, some starting, some not begun
    await loop.on_partitions_revoked(PARTITIONS)
    assert clients.unstopped() == []
    assert clients.gauge.now == 0
    assert loop.assigned == 0
    assert loop._fatal is None  # a rebalance is no failure
    await loop.opened()
    assert loop.assigned == 0


async def test_a_revocation_of_some_partitions_opens_the_rest_again(
    make_processor: Callable[..., Processor],
) -> None:
    loop, clients, _ = await _loop(make_processor, delay=0.05)
    await loop.on_partitions_assigned(PARTITIONS)
    await asyncio.sleep(0.06)
    await loop.on_partitions_revoked(PARTITIONS[:10])
    await loop.opened()
    assert set(loop._tasks) == set(PARTITIONS[10:])
    assert len(clients.unstopped()) == 20  # the tasks' own
    await loop.stop()
    assert clients.unstopped() == []


class _StoppingMidJoin(_Consumer):
    """As aiokafka's stop: it lets a join under way finish, assignment listener and all."""

    def __init__(self, loop: Callable[[], TransactionalLoop]) -> None:
        super().__init__([], on_idle=lambda: None)
        self.assigned = set(PARTITIONS)
        self.loop = loop

    async def stop(self) -> None:
        await self.loop().on_partitions_assigned(PARTITIONS)
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("assigned_first", [True, False])
async def test_a_stop_leaves_no_producer_unstopped_whenever_an_assignment_runs(
    make_processor: Callable[..., Processor], assigned_first: bool
) -> None:
    """Ctrl-C of ``accord demo`` mid-rebalance once left 72 producers unstopped: the stop
    stopped the tasks, then the consumer, whose stop let the assignment open new ones."""
    loop, clients, _ = await _loop(make_processor, delay=0.2)
    consumer = _StoppingMidJoin(lambda: loop)
    loop._consumer = consumer  # type: ignore[assignment]  # a fake
    if assigned_first:
        await loop.on_partitions_assigned(PARTITIONS)
        await asyncio.sleep(0.3)
    await loop.stop()
    assert clients.unstopped() == []
    assert clients.gauge.now == 0
    assert loop.assigned == 0


async def test_the_worker_consumer_keeps_its_place_on_the_modern_session_timeout(
    make_processor: Callable[..., Processor],
) -> None:
    """aiokafka's default session (10 s) is shorter than a busy loop's assignment; Kafka's
    own client has used 45 s since 3.0. A test may shorten it for workers it SIGKILLs."""
    loop, clients, _ = await _loop(make_processor, delay=0)
    assert clients.options["session_timeout_ms"] == 45_000
    assert clients.options["heartbeat_interval_ms"] == 3_000
    assert clients.options["rebalance_timeout_ms"] >= 45_000
    assert clients.options["max_poll_interval_ms"] == 300_000
    # A JoinGroup may wait the whole rebalance: the request must not time out first.
    assert clients.options["request_timeout_ms"] > clients.options["rebalance_timeout_ms"]
    short = GroupMembership.with_session(6_000).consumer_options()
    assert short["heartbeat_interval_ms"] == 2_000  # a third of the session, as Kafka advises
    await loop.stop()


class _Unanswered(_Many):
    """Kafka frozen: every producer's stop waits for ever, and so does the consumer's."""

    def transactional_producer(self, *_: str, **__: Any) -> Any:
        producer = super().transactional_producer()

        async def stop() -> None:
            producer.stopped = True
            await asyncio.Event().wait()

        producer.stop = stop  # type: ignore[method-assign]  # the fake's seam
        return producer


async def test_a_stop_with_kafka_frozen_closes_the_openings_the_tasks_and_the_consumer_together(
    make_processor: Callable[..., Processor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM's exit time: an opening's producers were once stopped without a bound, and the
    opening's, the tasks' and the consumer's closes (each bounded) ran one after another."""
    monkeypatch.setattr(_tasks, "CLOSE_WITHIN_S", 0.5)
    consumer = _Consumer([], on_idle=lambda: None)
    consumer.assigned = set(PARTITIONS)
    clients = _Unanswered(consumer, delay=0.01)

    async def frozen() -> None:
        await asyncio.Event().wait()

    consumer.stop = frozen  # type: ignore[method-assign]  # the fake's seam
    processor = make_processor()
    loop = TransactionalLoop(clients, client_id="c", clock=lambda: AT_LOOP, handover=_Handover(),
                             open_task=lambda *_: (processor, []), max_batch=10)  # fmt: skip
    await loop.start()
    await loop.on_partitions_assigned(PARTITIONS[:10])
    await loop.opened()
    clients.delay = 3600.0  # the next assignment's producers never finish starting
    await loop.on_partitions_assigned(PARTITIONS[10:])
    await asyncio.sleep(0.05)

    began = time.monotonic()
    await asyncio.wait_for(loop.stop(), timeout=10)
    took = time.monotonic() - began
    # Each close is bounded by two CLOSE_WITHIN_S (stop, then abandon); together, not added
    # up (2 + 2 + 1 of them, 2.5 s, one after another).
    assert took < 1.8
    assert clients.unstopped() == []  # each was asked to stop, opened or not
    assert loop.assigned == 0
