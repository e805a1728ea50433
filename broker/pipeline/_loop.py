"""The Kafka edge: a transactional consume → process → produce loop.

For every batch of input records, the records the processor returns (deliveries, notices,
quarantine, audit, state changelog) and the consumed offsets (as changelog entries) are
committed in ONE Kafka transaction, so a crash at any point leaves either all of a batch's
effects or none of them. Failure handling is crash-only: if a transaction cannot be committed
the loop aborts it and raises; a restarted worker rebuilds its state, offsets included, from
the changelog and resumes there (the same transactional id fences any zombie).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from broker.errors import Fenced, TransportError
from broker.kafka import (
    Consumer,
    KafkaClients,
    Producer,
    TopicPartition,
    abort_quietly,
    partition_for,
    stop_quietly,
    translated,
)
from broker.ops import Heartbeat
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._throttle import SenderBudget
from broker.provision import WORKER_GROUP
from broker.topics import ACCESS, CONSENT, INGRESS_PREFIX, party_of_ingress

log = structlog.get_logger("accord.worker")

INPUT_PATTERN = rf"^({re.escape(INGRESS_PREFIX)}.+|{re.escape(CONSENT)}|{re.escape(ACCESS)})$"
GROUP = WORKER_GROUP  # the group provisioning grants the worker
# How often the group's offsets are brought up to what transactions committed (for tools).
REPORT_EVERY_S = 5.0


@dataclass
class _Processed:
    """Records' effects, waiting for their transaction."""

    outs: list[OutRecord] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    stamps: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outs or self.offsets)


class _Resume:
    """Start each assigned partition where the worker's own record of it says.

    The group's committed offsets are not used: offsets commit inside the worker's
    transactions as changelog entries. A partition the changelog has never seen (a new
    agency's topic) starts where the consumer's reset policy puts it.
    """

    def __init__(self, consumer: Consumer, positions: dict[TopicPartition, int]) -> None:
        self._consumer = consumer
        self._positions = positions

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            position = self._positions.get(tp)
            if position is not None:
                self._consumer.seek(tp, position)


@contextlib.asynccontextmanager
async def _committing() -> AsyncIterator[None]:
    """A failed commit ends the worker with a line that says why (fenced: another took over)."""
    try:
        async with translated("committing a batch"):
            yield
    except Fenced as exc:
        raise Fenced(
            "another worker took over (this one's transactional producer was fenced); "
            "exactly one worker runs at a time, so this one stops"
        ) from exc


async def _settle(task: asyncio.Task[None] | None) -> None:
    """Wait for a commit in flight; its failure is the loop's failure."""
    if task is not None:
        await task


async def _cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel helper tasks and wait for them, whatever they ended with: cleanup must not
    replace the error that is ending the loop."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)


class TransactionalLoop:
    """Consumes every ingress topic plus consent and access; one transaction per batch."""

    def __init__(
        self,
        kafka: KafkaClients,
        *,
        transactional_id: str,
        client_id: str,
        clock: Callable[[], datetime],
        max_batch: int = 500,
        group: str = GROUP,
        pattern: str = INPUT_PATTERN,
        budget: SenderBudget | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.kafka = kafka
        self.heartbeat = heartbeat
        self.group = group
        self.pattern = pattern
        self.processor: Processor | None = None  # set between fence() and start()
        self.transactional_id = transactional_id
        self.client_id = client_id
        self.clock = clock
        self.max_batch = max_batch
        self.pending_policy: Callable[[], list[OutRecord]] | None = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._partitions: dict[str, list[int]] = {}
        self._placed: dict[tuple[str, bytes], int] = {}
        # Next offset to process per input partition, committed or not: where a (re)assigned
        # partition resumes. Processed-but-uncommitted records are in memory already, so
        # resuming at the group's older committed offset would see them again as replays.
        self._positions: dict[TopicPartition, int] = {}
        # Offsets whose transactions committed, and the task copying them to the group.
        self._durable: dict[TopicPartition, int] = {}
        self._reported: dict[TopicPartition, int] = {}
        self._reported_at = 0.0
        self._reporting: asyncio.Task[None] | None = None
        self._budget = budget
        self._paused: dict[str, float] = {}  # ingress topic -> when its sender may go on

    async def fence(self) -> None:
        """Start the transactional producer: from here on no other worker can commit.

        Starting it registers the transactional id with the coordinator, which fences every
        earlier producer with that id and aborts its open transaction. The worker restores
        its state only after this, so nothing can be committed behind the state it reads.
        """
        self._producer = self.kafka.transactional_producer(
            self.transactional_id,
            self.client_id,
            linger_ms=2,
            max_batch_size=256 * 1024,
            # Kafka 4's transaction verification answers a produce that races the previous
            # transaction's completion with NOT_ENOUGH_REPLICAS (a retriable stand-in for
            # CONCURRENT_TRANSACTIONS; aiokafka issue #1172). The default 100 ms backoff made
            # that race the largest part of our p99; the Java client retries it after 20 ms.
            retry_backoff_ms=10,
        )
        try:
            async with translated(f"connecting to Kafka at {self.kafka.bootstrap}"):
                await self._producer.start()
        except BaseException:
            await self.stop()
            raise

    async def start(self, processor: Processor) -> None:
        """Start consuming, with ``processor`` handling each record (``fence()`` first)."""
        self.processor = processor
        self._positions = {
            TopicPartition(topic, partition): offset
            for (topic, partition), offset in processor.services.state.offsets.items()
        }
        self._consumer = self.kafka.consumer(
            client_id=self.client_id,
            group=self.group,
            metadata_max_age_ms=5000,  # pick up new agencies' ingress topics quickly
            max_poll_records=self.max_batch,
            # Latency over fetch efficiency: a contact event should not sit in a broker-side
            # long poll waiting for company.
            fetch_max_wait_ms=20,
        )
        async with translated(f"connecting to Kafka at {self.kafka.bootstrap}"):
            await self._consumer.start()
        self.kafka.subscribe(self._consumer, self.pattern, _Resume(self._consumer, self._positions))

    async def stop(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                await stop_quietly(client)
        self._consumer = self._producer = None

    async def write_alone(self, records: list[OutRecord]) -> None:
        """Commit records that answer no input (policy loads, checkpoints) in a transaction."""
        if not records:
            return
        producer = self._require_producer()
        async with _committing(), producer.transaction():
            await self._send_all(producer, records)

    async def run(self, stop: asyncio.Event) -> None:
        """Process records as they arrive; commit whatever is processed, one transaction at a time.

        While a transaction commits, the loop goes on fetching and processing into the next
        one, which starts the moment the first ends: a record waits for at most the commit in
        flight, never for a fetch to be asked for. That overlap is safe because failure is
        crash-only: if a commit fails the loop raises, and what later records changed in memory
        dies with the process; a restarted worker resumes from the committed changelog.
        """
        consumer = self._require_consumer()
        pending = _Processed()
        committing: asyncio.Task[None] | None = None
        fetching: asyncio.Task[dict[TopicPartition, list[Any]]] | None = None
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                if self.heartbeat is not None:  # round at least every fetch (200 ms) when idle
                    self.heartbeat.beat()
                self._take_policy(pending)
                if committing is None and pending:
                    self._close(pending)
                    committing = asyncio.create_task(self._commit(pending), name="accord-commit")
                    pending = _Processed()
                if stop.is_set():
                    break
                self._resume_due(consumer)
                waits: set[asyncio.Future[Any]] = {stopping}
                if committing is not None:
                    waits.add(committing)
                # Back-pressure: while a slow commit runs, process at most one batch ahead.
                if len(pending.stamps) < self.max_batch:
                    if fetching is None:
                        fetching = asyncio.create_task(self._fetch(consumer))
                    waits.add(fetching)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if committing is not None and committing in done:
                    finished = committing
                    committing = None
                    finished.result()  # a failed commit ends the loop
                self._report_progress(consumer)
                if fetching is not None and fetching in done:
                    fetched = fetching
                    fetching = None
                    if batch := fetched.result():
                        await self._process(batch, pending)
            last, committing = committing, None
            await _settle(last)
            if pending:
                self._close(pending)
                await self._commit(pending)
            await self._report_now(consumer)
        finally:
            await _cancel(fetching, stopping, self._reporting)
            last, committing = committing, None
            await _settle(last)

    def _report_progress(self, consumer: Consumer) -> None:
        """Every few seconds, bring the group's offsets up to what transactions committed.

        The worker never reads them (it resumes from its changelog); they are there for the
        tools that read a group's lag, and so that a worker rolled back to an older version
        resumes near where this one stopped. Never ahead of a committed transaction; a
        failure is harmless and retried at the next report.
        """
        now = time.monotonic()
        if self._reporting is not None and not self._reporting.done():
            return
        if now - self._reported_at < REPORT_EVERY_S or self._durable == self._reported:
            return
        self._reported_at = now
        assigned = consumer.assignment()
        offsets = {tp: o for tp, o in self._durable.items() if tp in assigned}
        if not offsets:
            return

        async def report() -> None:
            try:
                async with translated("reporting the group's offsets"):
                    await consumer.commit(offsets)
            except TransportError as exc:  # a rebalance under way: the next report catches up
                log.debug("group_offsets_not_reported", error=type(exc.__cause__).__name__)
            else:
                self._reported.update(offsets)

        self._reporting = asyncio.create_task(report(), name="accord-report-offsets")

    async def _report_now(self, consumer: Consumer) -> None:
        """A last report on a clean stop, so the group's offsets end exactly current.

        Bounded: a stop must not hang on a group that is rebalancing.
        """
        with contextlib.suppress(TimeoutError):
            if self._reporting is not None:
                await asyncio.wait_for(asyncio.shield(self._reporting), REPORT_EVERY_S)
            self._reported_at = 0.0
            self._report_progress(consumer)
            if self._reporting is not None:
                await asyncio.wait_for(asyncio.shield(self._reporting), REPORT_EVERY_S)

    async def _fetch(self, consumer: Consumer) -> dict[TopicPartition, list[Any]]:
        """The next records, their partitions' positions moved past them before any await.

        A rebalance listener may run at any await; it must find the position after every
        record already fetched, or it would seek back and this worker would see them twice
        (as replays). A fetched batch is always processed before the loop fetches again.
        """
        try:
            batch: dict[TopicPartition, list[Any]] = await consumer.getmany(
                timeout_ms=200, max_records=self.max_batch
            )
        except UnicodeDecodeError:
            batch = await self._read_past(consumer)
        for tp, msgs in batch.items():
            self._positions[tp] = msgs[-1].offset + 1
        return batch

    async def _read_past(self, consumer: Consumer) -> dict[TopicPartition, list[Any]]:
        """Read on past a record aiokafka cannot parse (a header key that is not UTF-8).

        aiokafka raises out of ``getmany`` on such a record, at every fetch, and the
        partitions it drained before it in that call have moved past records it never
        returned. So every fetchable partition goes back to the next record this worker has
        not processed (a partition it has not read from in this run: the group's committed
        offset, which the transactions move with the outputs; with none, its beginning) and
        is read once by the tolerant path, which hands the record on for the processor to
        quarantine; the consumer then seeks past what was read.
        """
        assigned = consumer.assignment()
        fetchable = [tp for tp in assigned if tp.topic not in self._paused]
        starts: dict[TopicPartition, int] = {}
        async with translated("finding where unread partitions resume"):
            for tp in fetchable:
                if tp not in self._positions and (done := await consumer.committed(tp)) is not None:
                    starts[tp] = done
            never = [tp for tp in fetchable if tp not in self._positions and tp not in starts]
            starts |= await consumer.beginning_offsets(never) if never else {}
        rewind = {tp: self._positions.get(tp, starts.get(tp, 0)) for tp in fetchable}
        batch, moved = await self.kafka.read_tolerantly(rewind, limit=self.max_batch)
        assigned = consumer.assignment()  # a rebalance may have come meanwhile
        for tp, offset in rewind.items():
            if tp in assigned:
                consumer.seek(tp, moved.get(tp, offset))
        log.warning("read_past_undecodable", partitions=len(rewind),
                    records=sum(len(m) for m in batch.values()))  # fmt: skip
        return {tp: msgs for tp, msgs in batch.items() if tp in assigned}

    def _take_policy(self, pending: _Processed) -> None:
        """A requested policy load joins what is pending: its audit records follow it in order."""
        if self.pending_policy is not None:
            load, self.pending_policy = self.pending_policy, None
            pending.outs += load()

    async def _process(self, batch: dict[TopicPartition, list[Any]], into: _Processed) -> None:
        processor = self._require_processor()
        for tp, msgs in batch.items():
            for m in msgs:
                into.outs += processor.handle(
                    m.topic, m.partition, m.offset, m.value, m.headers, at=self.clock()
                )
                into.stamps.append(m.timestamp)
                await asyncio.sleep(0)  # let the transaction in flight make progress
            into.offsets[tp] = msgs[-1].offset + 1
            self._charge(tp.topic, len(msgs))

    def _charge(self, topic: str, records: int) -> None:
        """Count a sender's records against its budget; over it, pause its ingress topic."""
        sender = party_of_ingress(topic)
        if self._budget is None or sender is None:
            return  # consent and access share topics: no one sender to slow
        wait = self._budget.spend(sender, records, time.monotonic())
        if wait <= 0 or topic in self._paused:
            return
        consumer = self._require_consumer()
        consumer.pause(*(tp for tp in consumer.assignment() if tp.topic == topic))
        self._paused[topic] = time.monotonic() + wait
        metrics = self._require_processor().outbox.metrics
        metrics.count(metrics.throttled, sender)
        log.warning("sender_throttled", sender=sender, seconds=round(wait, 2))

    def _resume_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        for topic in [t for t, until in self._paused.items() if until <= now]:
            del self._paused[topic]
            consumer.resume(*(tp for tp in consumer.assignment() if tp.topic == topic))

    def _close(self, pending: _Processed) -> None:
        """The batch's last records: where to resume and the chain's head after it.

        The consumed offsets travel in the state changelog, in the same transaction as the
        outputs: two fewer coordinator round trips per commit than
        send_offsets_to_transaction, and the changelog alone says where to resume. The head
        is the chain's as of the last record processed, exactly what the batch's audit
        records end with.
        """
        offsets = {(tp.topic, tp.partition): o for tp, o in pending.offsets.items()}
        pending.outs += self._require_processor().consumed(offsets)

    async def _commit(self, done: _Processed) -> None:
        processor = self._require_processor()
        producer = self._require_producer()
        try:
            async with _committing():
                await producer.begin_transaction()
                await self._send_all(producer, done.outs)
                await producer.commit_transaction()
        except BaseException:
            await abort_quietly(producer)
            processor.outbox.metrics.transactions.labels(result="aborted").inc()
            raise
        self._durable.update(done.offsets)
        metrics = processor.outbox.metrics
        metrics.transactions.labels(result="committed").inc()
        now_ms = time.time() * 1000
        for ts in done.stamps:
            metrics.latency.observe(max(0.0, (now_ms - ts) / 1000))
        consumer = self._consumer
        if consumer is not None:
            assigned = consumer.assignment()  # highwater() asserts; a rebalance may be under way
            for tp, next_offset in done.offsets.items():
                high = consumer.highwater(tp) if tp in assigned else None
                if high is not None:
                    metrics.lag.labels(topic=tp.topic).set(max(0, high - next_offset))

    async def _send_all(self, producer: Producer, outs: list[OutRecord]) -> None:
        """Send a batch's outputs as one record batch per topic-partition.

        ``producer.send`` costs tens of microseconds of Python per record, and an event makes
        about twelve; filling aiokafka's batch builders directly costs a fraction of that.
        Keys are partitioned exactly as ``send`` would (the Java client's murmur2), so an
        audit chain stays on one partition, in order.
        """
        builders: dict[tuple[str, int], Any] = {}
        for r in outs:
            where = (r.topic, await self._partition(producer, r.topic, r.key))
            builder = builders.get(where)
            if builder is None:
                builder = builders[where] = producer.create_batch()
            if builder.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers)):
                continue
            if builder.record_count() == 0:
                raise TransportError(f"a record for {r.topic} is larger than a producer batch")
            await producer.send_batch(builder, where[0], partition=where[1])
            builder = builders[where] = producer.create_batch()
            builder.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers))
        for (topic, partition), builder in builders.items():
            await producer.send_batch(builder, topic, partition=partition)

    async def _partition(self, producer: Producer, topic: str, key: bytes | None) -> int:
        if key is not None and (hit := self._placed.get((topic, key))) is not None:
            return hit
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        placed = partition_for(key, partitions)
        if key is not None:
            if len(self._placed) >= 50_000:  # murmur2 is pure Python: keep the hot keys
                self._placed.clear()
            self._placed[(topic, key)] = placed
        return placed

    @property
    def assigned(self) -> int:
        """How many input partitions this worker holds now (0 before start or mid-rebalance)."""
        return len(self._consumer.assignment()) if self._consumer is not None else 0

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise TransportError("the worker's consumer is not started")
        return self._consumer

    def _require_processor(self) -> Processor:
        if self.processor is None:
            raise TransportError("the worker's loop has no processor (start() it first)")
        return self.processor

    def _require_producer(self) -> Producer:
        if self._producer is None:
            raise TransportError("the worker's producer is not started")
        return self._producer
