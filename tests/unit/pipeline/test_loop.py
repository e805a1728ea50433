"""The transactional loop's own logic, over fake Kafka clients and a real processor.

The real broker is exercised end to end in tests/e2e; these pin what is hard to provoke
there: a rebalance between fetch and processing, and a stop while a commit is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from broker.audit import AuditRecord
from broker.config import KafkaSettings
from broker.kafka import KafkaClients, TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._loop import TransactionalLoop, _Resume
from broker.pipeline._processor import Processor
from broker.topics import AUDIT, STATE, ingress
from tests.unit.pipeline.test_processor import incident, seal_as

TP = TopicPartition(ingress("wmp"), 0)


def _messages(keys: FileKeyStore, first: int, count: int) -> list[Any]:
    out = []
    for offset in range(first, first + count):
        value, headers = seal_as(keys, "wmp", incident(), topic=ingress("wmp"))
        out.append(SimpleNamespace(topic=TP.topic, partition=0, offset=offset, value=value,
                                   headers=headers, timestamp=0, key=None))  # fmt: skip
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
        self.group_commits: list[dict[TopicPartition, int]] = []

    async def getmany(
        self,
        timeout_ms: int,
        max_records: int,  # noqa: ARG002  # aiokafka's signature
    ) -> dict[TopicPartition, list[Any]]:
        if self.batches:
            return {TP: self.batches.pop(0)}
        self.on_idle()
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

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
        assert isinstance(listener, _Resume)
        self.asked.append(("subscribe", pattern))


async def _loop(
    processor: Processor, consumer: _Consumer, producer: _Producer
) -> TransactionalLoop:
    at = datetime(2026, 11, 22, 8, tzinfo=UTC)
    clients = _Clients(consumer, producer)
    loop = TransactionalLoop(
        clients, transactional_id="t", client_id="c", clock=lambda: at, max_batch=10
    )
    await loop.fence()
    await loop.start(processor)
    assert clients.asked == [
        ("producer", "t", "c"), ("consumer", "c", loop.group), ("subscribe", loop.pattern)
    ]  # fmt: skip
    return loop


async def test_a_rebalance_after_a_fetch_resumes_past_the_fetched_records(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Otherwise the records being processed would be fetched again and refused as replays."""
    consumer = _Consumer([_messages(pipeline_keys, 40, 3)], on_idle=lambda: None)
    loop = await _loop(make_processor(), consumer, _Producer())
    batch = await loop._fetch(consumer)  # type: ignore[arg-type]  # a fake
    assert [m.offset for m in batch[TP]] == [40, 41, 42]
    await _Resume(consumer, loop._positions).on_partitions_assigned([TP])  # type: ignore[arg-type]
    assert consumer.seeks == {TP: 43}


async def test_a_stop_during_a_commit_still_commits_the_rest_with_the_chain_head(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Every transaction that carries audit records ends with the matching head entry."""
    stop = asyncio.Event()
    consumer = _Consumer(
        [_messages(pipeline_keys, 0, 2), _messages(pipeline_keys, 2, 2)], on_idle=stop.set
    )
    producer = _Producer()
    processor = make_processor()
    loop = await _loop(processor, consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)

    assert len(producer.transactions) == 2  # the second was still pending at the stop
    for records in producer.transactions:
        audit = [AuditRecord.model_validate_json(v) for t, _, v in records if t == AUDIT]
        heads = [v for t, k, v in records if t == STATE and k and k.startswith(b"h:")]
        offsets = {k: v for t, k, v in records if t == STATE and k and k.startswith(b"o:")}
        assert audit
        assert len(heads) == 1
        assert heads[0] == (f'{{"seq": {audit[-1].seq}, "hash": "{audit[-1].hash}"}}'.encode())
        assert offsets  # and the offsets they consumed
    assert offsets == {f"o:{TP.topic}:0".encode(): b"4"}
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
    loop = await _loop(make_processor(), consumer, producer)
    await asyncio.wait_for(loop.run(stop), timeout=10)
    committed = [
        int(v) for records in producer.transactions for t, k, v in records
        if t == STATE and k == f"o:{TP.topic}:0".encode()
    ]  # fmt: skip
    assert committed == [2, 4]
    assert consumer.group_commits  # reported
    assert all(c[TP] in committed for c in consumer.group_commits)  # only committed offsets
    assert consumer.group_commits[-1] == {TP: 4}  # and current once stopped
