"""A task: one input partition this worker owns, with its own producer and audit chain.

Each task commits through a transactional producer whose id names its partition
(``accord-worker.<topic>-<N>``). Whichever worker the group gives the partition to starts a
producer with that id, which fences every earlier one and ends (aborts) any transaction the
previous owner left open; only then does it read the partition's state from the changelog.
So a worker that lost a partition without knowing (paused, partitioned from the group)
cannot commit behind its successor, and the successor starts from exactly what committed.
Fencing per partition, not per worker, is what makes that true: a producer per worker
(Kafka's KIP-447) needs the group's generation in each offset commit, which aiokafka cannot
send, and our offsets commit in the changelog anyway.

Every wait on Kafka here has a deadline. aiokafka retries a transaction's requests for as long
as Kafka does not answer them, and a producer's stop waits for what it holds to be delivered:
with Kafka gone mid-commit, the worker once waited for ever, stalled and deaf to SIGTERM. A
commit not confirmed in time fails like any other (the worker ends and restarts from what
committed); which way Kafka decided it is read from the changelog then, never assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from broker.errors import Fenced, TransportError
from broker.kafka import (
    Consumer,
    KafkaClients,
    Producer,
    TopicPartition,
    abandon,
    abort_quietly,
    left_running,
    partition_for,
    stop_in_background,
    stop_quietly,
    translated,
)
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId
from broker.provision import WORKER_TRANSACTIONAL_ID

T = TypeVar("T")


def transactional_id(task: TaskId) -> str:
    """The producer id that owns ``task``'s commits, under the prefix provisioning grants."""
    return f"{WORKER_TRANSACTIONAL_ID}.{task.topic}-{task.partition}"


def task_producer(kafka: KafkaClients, task: TaskId, client_id: str) -> Producer:
    """``task``'s transactional producer, not started: its start fences earlier owners."""
    return kafka.transactional_producer(
        transactional_id(task),
        client_id,
        linger_ms=2,
        max_batch_size=256 * 1024,
        # Kafka 4's transaction verification answers a produce that races the previous
        # transaction's completion with NOT_ENOUGH_REPLICAS (a retriable stand-in for
        # CONCURRENT_TRANSACTIONS; aiokafka issue #1172). The default 100 ms backoff made
        # that race the largest part of our p99; the Java client retries it after 20 ms.
        retry_backoff_ms=10,
        # A broker lost without a TCP reset answers nothing: a request to it is given up
        # (and the metadata refreshed, so the retry goes to the new leader or coordinator)
        # only after this. aiokafka's 40 s would outlast COMMIT_WITHIN_S, so every worker
        # would stop for a failure Kafka tolerates.
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
    )


@dataclass
class Batch:
    """A task's processed records, waiting for their transaction."""

    outs: list[OutRecord] = field(default_factory=list)
    next_offset: int | None = None
    stamps: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # replay ids the transaction makes durable
    resealed: int | None = None  # consent entries it seals again (logged once committed)

    def __bool__(self) -> bool:
        return bool(self.outs) or self.next_offset is not None


#: How long a task producer waits for Kafka to answer one request before it gives the
#: request up, refreshes its metadata and retries (a produce request also asks its replicas
#: to acknowledge within this).
REQUEST_TIMEOUT_MS = 15_000
#: Past this, the transaction coordinator aborts a transaction itself (aiokafka's default).
TRANSACTION_TIMEOUT_MS = 60_000
#: How long a transaction may take, from its start to Kafka confirming its commit. A healthy
#: cluster confirms in milliseconds, and within seconds when a leader or the transaction
#: coordinator moves cleanly. A broker lost without a TCP reset costs a request's timeout,
#: then, when the connection to it is retried before the metadata moves on, a second: this
#: leaves room for both and the retry, and stays under the transaction timeout, so that the
#: worker, not the coordinator, is the one that says a commit failed.
COMMIT_WITHIN_S = 50.0
#: After SIGTERM, how long the commits under way and the last ones may take before the worker
#: stops without them (their records are processed again by the next owner).
STOP_WITHIN_S = 10.0
#: How long an abort after a failed commit, or a client's stop, may wait for Kafka. A healthy
#: cluster answers in milliseconds; past this, the process is ending anyway.
CLOSE_WITHIN_S = 3.0


@contextlib.asynccontextmanager
async def committing(task: TaskId, *, within: float = COMMIT_WITHIN_S) -> AsyncIterator[None]:
    """A failed commit ends the worker with a line that says why (fenced: another took over;
    not confirmed within ``within`` seconds: Kafka not answering)."""
    where = f"{task.topic}-{task.partition}"
    try:
        async with asyncio.timeout(within), translated(f"committing a batch of {where}"):
            yield
    except Fenced as exc:
        raise Fenced(
            f"another worker took over {where} (this one's producer for it was fenced); "
            "this worker stops and restarts from what committed"
        ) from exc
    except TimeoutError:
        raise TransportError(
            f"Kafka did not confirm the commit of a batch of {where} within {within:g} s; "
            "this worker stops, and its next start resumes from what Kafka did commit"
        ) from None


async def abort_within(producer: Producer) -> bool:
    """Abort a failed transaction, best effort, waiting at most ``CLOSE_WITHIN_S``: with Kafka
    not answering, the abort would wait as long as the commit did. Left open, the transaction
    is aborted by the next owner's fencing, or by Kafka's transaction timeout.

    Whether Kafka confirmed the abort: if not, the commit's outcome is unknown (Kafka may
    have committed it before it stopped answering)."""
    try:
        async with asyncio.timeout(CLOSE_WITHIN_S):
            return await abort_quietly(producer)
    except TimeoutError:
        return False


async def stop_within(producer: Producer, *, abandoning: bool = False) -> None:
    """Stop ``producer`` within ``2 * CLOSE_WITHIN_S``: abandoned (``abandon``) if it holds a
    commit not confirmed (``abandoning``) or its stop takes longer than ``CLOSE_WITHIN_S``.

    aiokafka's stop first waits for every batch it holds to be delivered, and for the
    transactional request under way, both retried for as long as Kafka does not answer; then
    its connections close, which over TLS waits 30 s for a broker that does not answer to
    say goodbye. The process is ending: that wait is not its to sit out. Only a transaction
    Kafka confirmed counts as committed, so nothing an abandoned producer held is counted,
    whatever Kafka makes of it.
    """
    # Never raised here (one producer's bug must not keep the others from stopping): what a
    # stop or an abandon raises past stop_quietly is logged by its type (left_running).
    if not abandoning:
        stopping = stop_in_background(stop_quietly(producer))
        left_running(stopping)
        done, _ = await asyncio.wait([stopping], timeout=CLOSE_WITHIN_S)
        if done:
            return
    # Its sender cancelled, its batches failed: a stop under way ends too, but for the
    # connections' closing, which goes on in the background.
    abandoning_it = stop_in_background(abandon(producer))
    left_running(abandoning_it)
    await asyncio.wait([abandoning_it], timeout=CLOSE_WITHIN_S)


async def close_within(client: Consumer) -> None:
    """Stop a consumer, waiting at most ``CLOSE_WITHIN_S``: leaving its group waits for
    Kafka's answer, and its connections' closing as :func:`stop_within` says.

    Cancelled past that, unlike ``broker.kafka.stop_bounded``'s stop, left running: only a
    worker's end stops these consumers (``_worker``), the process's own end follows and closes
    whatever a cancelled stop left open (``asyncio.run`` would cancel a stop still running
    then anyway). They commit nothing on stop: a task's offsets go with its transaction."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_WITHIN_S):
            await stop_quietly(client)


SendAll = Callable[[Producer, list[OutRecord]], Awaitable[None]]

#: How many of an assignment's producers start at once. Each start is a connection (TLS and a
#: SCRAM login on a secured cluster) and an InitProducerId round trip to the transaction
#: coordinator: one after another, an assignment of 72 partitions (the example bundle's) adds
#: up 72 round trips; all at once, their handshakes crowd the event loop and the broker.
STARTS_AT_ONCE = 12


async def start_all(
    producers: Iterable[Producer],
    *,
    at_once: int = STARTS_AT_ONCE,
    started: Callable[[], None] | None = None,
) -> None:
    """Start ``producers``, ``at_once`` at a time (each start fences its id's earlier owner);
    ``started`` is called as each one has started (Kafka answered: ``connecting``).

    If a start fails, or this is cancelled, the starts under way are cancelled and waited for
    before the error goes on: none is left running. Stopping the producers, started or not,
    is the caller's (:func:`stop_all`).
    """
    gate = asyncio.Semaphore(at_once)

    async def start(producer: Producer) -> None:
        async with gate:
            await producer.start()
        if started is not None:
            started()

    starts = [asyncio.create_task(start(p), name="accord-producer-start") for p in producers]
    try:
        await asyncio.gather(*starts)
    finally:
        for running in starts:
            running.cancel()  # a no-op for those that ended
        await asyncio.gather(*starts, return_exceptions=True)


async def settle_all(tasks: Iterable[Task], *, within: float) -> None:
    """Wait up to ``within`` seconds for the tasks' commits in flight, then cancel those still
    waiting: the worker is ending, their outcome is read from the changelog at the next start,
    and their failures were or will be said by whoever raised first."""
    running = [t.in_flight for t in tasks if t.in_flight is not None]
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=within)
    for commit in late:
        commit.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def meanwhile(
    waited: Awaitable[T],
    stop: asyncio.Event,
    tasks: Mapping[Any, Task],
    between: Callable[[], None],
) -> asyncio.Future[T] | None:
    """Wait for ``waited`` (ended: its result or error is the caller's to take), or for
    ``stop`` (None, ``waited`` cancelled), while commits go on: ``between`` runs each time a
    commit of ``tasks`` ends, and at least every half second, and may raise to end the wait.

    What the loop waits for on Kafka outside its own round (end offsets, the changelog's tail
    catching up) can take as long as Kafka does not answer: it must not hold back a stop, or
    a failed commit that ends the worker anyway."""
    job = asyncio.ensure_future(waited)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not job.done():
            commits = {t.in_flight for t in tasks.values() if t.in_flight is not None}
            await asyncio.wait(
                {job, stopping, *commits}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
            )
            if job.done():
                break
            between()
            if stop.is_set():
                return None
        return job
    finally:
        stopping.cancel()
        if not job.done():
            job.cancel()
        await asyncio.gather(job, stopping, return_exceptions=True)


async def stop_all(producers: Iterable[Producer]) -> None:
    """Stop ``producers`` together, each as :func:`stop_within` does (a start Kafka never
    answered leaves a producer whose stop would wait as long), and finish doing so even if
    the caller is cancelled meanwhile (a stop of the worker during a revocation): one left
    unstopped leaks its connections and warns at exit (``Unclosed AIOKafkaProducer``)."""
    stops = asyncio.gather(*(stop_within(p) for p in producers))
    await asyncio.shield(stops)


class Task:
    """One owned partition: its processor, its producer, its batch and its commit in flight."""

    def __init__(
        self,
        task: TaskId,
        producer: Producer,
        processor: Processor,
        partitions: int,
        *,
        opened_after: int = 0,
    ) -> None:
        self.id = task
        self.tp = TopicPartition(task.topic, task.partition)
        self.producer = producer
        self.processor = processor
        self.partitions = partitions
        self.pending = Batch()
        self.in_flight: asyncio.Task[Batch] | None = None
        self.closed = False
        self.position: int | None = None  # the next offset to process (None: not known yet)
        #: How many fetches had returned when this task opened: records any of them returned
        #: were read for an earlier task of this partition, and are not this one's.
        self.opened_after = opened_after
        #: A commit failed or was never confirmed: the producer may still be retrying it, so
        #: it is abandoned, not stopped (a stop would wait for Kafka to answer).
        self.unconfirmed = False

    def due(self) -> bool:
        """Whether a transaction should start: records pending, or a recall to send."""
        return bool(self.pending) or self.processor.recall_due()

    def close_batch(self) -> Batch:
        """Seal the pending batch for its transaction: recalls due, offset, checkpoint, head."""
        done, self.pending = self.pending, Batch()
        offsets = (
            {}
            if done.next_offset is None
            else {(self.id.topic, self.id.partition): done.next_offset}
        )
        done.outs += self.processor.consumed(offsets)
        done.ids = self.processor.services.state.take_marked()
        return done

    async def commit(self, done: Batch, send_all: SendAll) -> Batch:
        """Commit ``done`` in one transaction; its replay ids are then durable."""
        producer = self.producer
        metrics = self.processor.outbox.metrics
        began = time.perf_counter()
        try:
            async with committing(self.id, within=COMMIT_WITHIN_S):
                await producer.begin_transaction()
                await send_all(producer, done.outs)
                await producer.commit_transaction()
        except BaseException:
            # Not known committed, so not settled: the worker ends (crash-only), and the
            # changelog says at its next start whether Kafka committed it after all.
            self.unconfirmed = True
            # "unconfirmed": neither the commit nor its abort confirmed, so the changelog,
            # not this count, says whether it took (an alert on "aborted" must not be told
            # that a batch Kafka may have committed was not).
            aborted = await abort_within(producer)
            metrics.transactions.labels(result="aborted" if aborted else "unconfirmed").inc()
            raise
        metrics.transaction_time.observe(time.perf_counter() - began)
        self.processor.services.state.settle(done.ids)
        metrics.transactions.labels(result="committed").inc()
        return done

    async def settle(self) -> None:
        """Wait for the commit in flight, if any; its failure is the caller's.

        It stays this task's commit in flight until it ends, so that whoever else settles
        meanwhile (a revocation, before it stops the producer) waits for it too."""
        running = self.in_flight
        if running is None:
            return
        try:
            await running
        finally:
            if self.in_flight is running:
                self.in_flight = None

    async def stop(self) -> None:
        self.closed = True
        await stop_within(self.producer, abandoning=self.unconfirmed)


class RecordSender:
    """Writes a batch's outputs into the transaction open on a producer."""

    def __init__(self) -> None:
        self._partitions: dict[str, list[int]] = {}
        self._placed: dict[tuple[str, bytes], int] = {}

    async def send_all(self, producer: Producer, outs: list[OutRecord]) -> None:
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
