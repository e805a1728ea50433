"""A commit Kafka never confirms, over the fakes of test_loop: it ends the loop with one error
within a bounded time, is never counted as committed, and a stop meanwhile is bounded too.

aiokafka retries a transaction's requests for as long as Kafka does not answer them, and a
sender task that dies may leave the transaction's futures unresolved: the commit's await
then never returns. These fakes wait for ever in the same place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from broker.config import KafkaSettings
from broker.errors import TransportError
from broker.kafka import KafkaClients, TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline import _commits, _loop, _tasks
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId
from broker.topics import ingress
from tests.unit.pipeline.test_loop import TP, _Consumer, _messages, _Producer
from tests.unit.pipeline.test_loop import _loop as started_loop


class _Unanswered(_Producer):
    """Kafka gone mid-commit: commits from the ``from_commit``-th on are never confirmed, and
    the aborts that follow wait as long."""

    def __init__(self, from_commit: int = 0) -> None:
        super().__init__()
        self.from_commit = from_commit
        self.commits = 0
        self.stopped = False

    async def commit_transaction(self) -> None:
        self.commits += 1
        if self.commits > self.from_commit:
            await asyncio.Event().wait()
        await super().commit_transaction()

    async def abort_transaction(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deadlines of a test's length; what they bound is the same."""
    monkeypatch.setattr(_tasks, "COMMIT_WITHIN_S", 0.3)
    monkeypatch.setattr(_tasks, "CLOSE_WITHIN_S", 0.1)
    monkeypatch.setattr(_loop, "STOP_WITHIN_S", 0.3)
    monkeypatch.setattr(_commits, "STOP_WITHIN_S", 0.3)


@pytest.mark.usefixtures("quick")
async def test_a_commit_kafka_never_confirms_ends_the_loop_with_one_error_and_counts_nothing(
    make_processor: Callable[..., Processor],
    pipeline_keys: FileKeyStore,
) -> None:
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    producer = _Unanswered()
    loop, [processor], _ = await started_loop(make_processor, consumer, producer)
    [task] = loop._tasks.values()

    with pytest.raises(TransportError, match="Kafka did not confirm the commit of a batch of"):
        await asyncio.wait_for(loop.run(asyncio.Event()), timeout=5)

    assert producer.transactions == []
    assert task.unconfirmed  # so its producer is abandoned at the stop, not flushed
    metrics = processor.outbox.metrics
    assert metrics.transactions.labels(result="committed")._value.get() == 0
    # Its abort was never confirmed either: Kafka may have committed it, so not "aborted".
    assert metrics.transactions.labels(result="aborted")._value.get() == 0
    assert metrics.transactions.labels(result="unconfirmed")._value.get() == 1
    await asyncio.wait_for(loop.stop(), timeout=5)
    assert producer.stopped


class _Refused(_Producer):
    """Kafka answers: the commit is refused, the abort that follows confirmed."""

    async def commit_transaction(self) -> None:
        raise KafkaError("refused")


@pytest.mark.usefixtures("quick")
async def test_a_commit_refused_and_then_aborted_counts_as_aborted(
    make_processor: Callable[..., Processor],
    pipeline_keys: FileKeyStore,
) -> None:
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, [processor], _ = await started_loop(make_processor, consumer, _Refused())

    with pytest.raises(TransportError):
        await asyncio.wait_for(loop.run(asyncio.Event()), timeout=5)

    metrics = processor.outbox.metrics
    assert metrics.transactions.labels(result="aborted")._value.get() == 1
    assert metrics.transactions.labels(result="unconfirmed")._value.get() == 0
    await asyncio.wait_for(loop.stop(), timeout=5)


@pytest.mark.usefixtures("quick")
async def test_a_stop_while_a_commit_waits_for_kafka_ends_within_the_stop_bound(
    make_processor: Callable[..., Processor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM is honoured in ``STOP_WITHIN_S``, well before the commit's own deadline."""
    monkeypatch.setattr(_tasks, "COMMIT_WITHIN_S", 60.0)
    stop = asyncio.Event()
    consumer = _Consumer([], on_idle=stop.set, assigned=True)
    loop, _, _ = await started_loop(make_processor, consumer, _Unanswered())

    with pytest.raises(TransportError, match="stopping: Kafka did not confirm the last commits"):
        await asyncio.wait_for(loop.run(stop), timeout=5)
    await asyncio.wait_for(loop.stop(), timeout=5)


@pytest.mark.usefixtures("quick")
async def test_a_failed_commit_does_not_wait_for_others_kafka_never_confirms(
    make_processor: Callable[..., Processor],
) -> None:
    """What stalled a worker for good: one commit failed (its sender died) while another
    waited for Kafka; the loop's way out waited for that one without end."""
    consumer = _Consumer([], on_idle=lambda: None, assigned=True)
    loop, _, _ = await started_loop(make_processor, consumer, _Producer())
    [task] = loop._tasks.values()
    hanging: asyncio.Future[_tasks.Batch] = asyncio.get_running_loop().create_future()
    task.in_flight = asyncio.ensure_future(hanging)  # the other task's commit, unconfirmed
    loop._fatal = TransportError("committing a batch of x-0: KafkaError")

    with pytest.raises(TransportError, match="KafkaError"):
        await asyncio.wait_for(loop.run(asyncio.Event()), timeout=5)
    assert hanging.cancelled()


def test_a_broker_lost_without_a_reset_is_retried_around_well_within_the_commit_bound() -> None:
    """aiokafka's 40 s request timeout outlasted the 30 s bound: a broker that went silent
    stopped every worker before the commit's retry could reach the new leader."""
    asked: dict[str, Any] = {}

    class Recording(KafkaClients):
        def transactional_producer(self, *_: str, **tuning: Any) -> Any:
            asked.update(tuning)

    _tasks.task_producer(Recording(KafkaSettings(bootstrap="fake:9092")), TaskId("t", 0), "c")

    request_s = asked["request_timeout_ms"] / 1000
    # A request to the silent broker, a reconnection to it before the metadata moves on,
    # and the retry on the new leader, all before the worker gives the commit up...
    assert 3 * request_s <= _tasks.COMMIT_WITHIN_S
    # ...and the worker gives it up before the coordinator aborts it.
    assert asked["transaction_timeout_ms"] / 1000 > _tasks.COMMIT_WITHIN_S


class _RevokingOnStop(_Producer):
    """A commit still running when the stop arrives (the first takes 200 ms) runs ``revoke``
    before it ends: a rebalance while the stop settles the commits in flight."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self.stop_event = stop
        self.revoke: Callable[[], Any] | None = None

    async def commit_transaction(self) -> None:
        await super().commit_transaction()
        if self.stop_event.is_set() and self.revoke is not None:
            revoke, self.revoke = self.revoke, None
            await revoke()


async def test_a_commit_failure_a_revocation_meets_during_the_last_commits_fails_the_stop(
    make_processor: Callable[..., Processor],
) -> None:
    """The revocation keeps the failure for the loop to raise; the stop once returned without
    looking, and the worker exited 0 with a commit Kafka never confirmed."""
    stop = asyncio.Event()
    consumer = _Consumer([], on_idle=stop.set, assigned=True)
    producer = _RevokingOnStop(stop)
    loop, _, _ = await started_loop(make_processor, consumer, producer)
    other_tp = TopicPartition(ingress("wmp"), 1)
    other = _tasks.Task(TaskId(other_tp.topic, 1), _Producer(), make_processor(), 2)  # type: ignore[arg-type]  # a fake

    async def failed() -> _tasks.Batch:
        raise TransportError(f"committing a batch of {other_tp.topic}-1: KafkaError")

    async def revoke() -> None:
        # Another partition whose commit failed, given up while the stop waits for this one's.
        other.in_flight = asyncio.ensure_future(failed())
        loop._tasks[other_tp] = other
        await loop.on_partitions_revoked([other_tp])

    producer.revoke = revoke
    with pytest.raises(TransportError, match="KafkaError"):
        await asyncio.wait_for(loop.run(stop), timeout=5)
    assert producer.revoke is None  # the revocation did run during the last commits
    assert TP in loop._tasks
    await asyncio.wait_for(loop.stop(), timeout=5)
