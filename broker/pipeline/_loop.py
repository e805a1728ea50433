"""The Kafka edge: a transactional consume → process → produce loop.

For every batch of input records, the records the processor returns (deliveries, notices,
quarantine, audit, state changelog) and the consumed offsets are committed in ONE Kafka
transaction, so a crash at any point leaves either all of a batch's effects or none of them.
Failure handling is crash-only: if a transaction cannot be committed the loop aborts it and
raises; a restarted worker rebuilds its state from the changelog and resumes from the last
committed offsets (the same transactional id fences any zombie).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from broker.envelope import KeyResolver, Opener
from broker.errors import EnvelopeError, TransportError
from broker.pipeline._processor import Processor
from broker.pipeline._stages import OutRecord
from broker.pipeline._state import WorkerState
from broker.topics import ACCESS, CONSENT, INGRESS_PREFIX, STATE, WORKER

log = structlog.get_logger("accord.worker")

INPUT_PATTERN = rf"^({re.escape(INGRESS_PREFIX)}.+|{re.escape(CONSENT)}|{re.escape(ACCESS)})$"
GROUP = "accord-worker"


class _AlwaysNew:
    """Restoring state re-reads records already processed: replay does not apply."""

    def first_sighting(self, event_id: str) -> bool:  # noqa: ARG002  # protocol signature
        return True


async def restore_state(bootstrap: str, keys: KeyResolver) -> WorkerState:
    """Rebuild the worker's state from the committed changelog, start to end."""
    state = WorkerState()
    opener = Opener(WORKER, keys, replay_guard=_AlwaysNew())
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer = AIOKafkaConsumer(
        STATE,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="accord-worker-restore",
    )
    try:
        await consumer.start()
        if STATE not in await consumer.topics():
            # Never "no state": starting without the changelog would forget every replay id.
            raise TransportError(f"the state changelog {STATE} does not exist")
        for _ in range(100):
            tps = sorted(consumer.assignment())
            if tps:
                break
            await asyncio.sleep(0.1)
        else:
            raise TransportError(f"no partitions of {STATE} could be assigned")
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for msgs in batch.values():
                for m in msgs:
                    _apply(state, opener, m.key, m.value, m.headers)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise TransportError(f"restoring worker state: {type(exc).__name__}") from exc
    finally:
        await consumer.stop()
    return state


def _apply(
    state: WorkerState,
    opener: Opener,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> None:
    if key is None or value is None:
        return
    name = key.decode()
    if name.startswith("c:"):
        try:
            value = opener.open_kafka(value, headers, topic=STATE).payload
        except EnvelopeError as exc:
            # Fail closed: the subject's consent is treated as missing, never guessed.
            log.error("state_entry_unopenable", key_kind="c", reason=exc.reason)  # noqa: TRY400  # the traceback would add nothing
            return
    state.apply(name, value)


class TransactionalLoop:
    """Consumes every ingress topic plus consent and access; one transaction per batch."""

    def __init__(
        self,
        bootstrap: str,
        processor: Processor,
        *,
        transactional_id: str,
        clock: Callable[[], datetime],
        max_batch: int = 500,
    ) -> None:
        self.bootstrap = bootstrap
        self.processor = processor
        self.transactional_id = transactional_id
        self.clock = clock
        self.max_batch = max_batch
        self.pending_policy: Callable[[], list[OutRecord]] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=256 * 1024,
            client_id=self.transactional_id,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,  # pick up new agencies' ingress topics quickly
            max_poll_records=self.max_batch,
            # Latency over fetch efficiency: a contact event should not sit in a broker-side
            # long poll waiting for company.
            fetch_max_wait_ms=20,
            client_id=self.transactional_id,
        )
        try:
            await self._producer.start()
            await self._consumer.start()
        except KafkaError as exc:
            raise TransportError(
                f"connecting to Kafka at {self.bootstrap}: {type(exc).__name__}"
            ) from exc
        self._consumer.subscribe(pattern=INPUT_PATTERN)

    async def stop(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(KafkaError):
                    await client.stop()
        self._consumer = self._producer = None

    async def write_alone(self, records: list[OutRecord]) -> None:
        """Commit records that answer no input (policy loads, checkpoints) in a transaction."""
        if not records:
            return
        producer = self._require_producer()
        async with producer.transaction():
            for r in records:
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101  # start() first
        while not stop.is_set():
            if self.pending_policy is not None:
                load, self.pending_policy = self.pending_policy, None
                await self.write_alone(load())
            batch = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            if batch:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]  # aiokafka's record type is untyped
        producer = self._require_producer()
        offsets: dict[TopicPartition, int] = {}
        stamps: list[int] = []
        await producer.begin_transaction()
        try:
            for tp, msgs in batch.items():
                for m in msgs:
                    outs = self.processor.handle(
                        m.topic, m.partition, m.offset, m.value, m.headers, at=self.clock()
                    )
                    for r in outs:
                        await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                    stamps.append(m.timestamp)
                offsets[tp] = msgs[-1].offset + 1
            await producer.send_offsets_to_transaction(offsets, GROUP)
            await producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(KafkaError):
                await producer.abort_transaction()
            self.processor.ctx.metrics.transactions.labels(result="aborted").inc()
            raise
        metrics = self.processor.ctx.metrics
        metrics.transactions.labels(result="committed").inc()
        now_ms = time.time() * 1000
        for ts in stamps:
            metrics.latency.observe(max(0.0, (now_ms - ts) / 1000))
        consumer = self._consumer
        if consumer is not None:
            for tp, next_offset in offsets.items():
                high = consumer.highwater(tp)
                if high is not None:
                    metrics.lag.labels(topic=tp.topic).set(max(0, high - next_offset))

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise TransportError("the worker's producer is not started")
        return self._producer
