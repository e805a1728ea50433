"""Appending to one audit chain on ``accord.audit`` from outside the worker.

The governance console and ``accord audit review-override`` write records of their own (an
officer's look-up, an override's review). Each writer owns a chain, ``console:<host>``, and a
transactional producer whose id is derived from that chain: starting it fences any earlier
writer of the chain and aborts its open transaction, so the head read next cannot move under
us. Every append is one transaction holding the new records and a signed checkpoint over them,
so truncation of a console chain is as detectable as truncation of the worker's.

If a send fails (Kafka away), or the producer's start or the transaction takes longer than
``APPEND_WITHIN_S``, nothing of that append was committed (but see ``_transact``): the writer
abandons its producer, and the next append starts a new one and re-reads the head from the
topic. The caller learns of the failure as a ``TransportError`` and must not act as if the
record exists. A writer another process fenced (it started a producer with the chain's id)
stays fenced: every later append raises ``Fenced`` at once. Taking the chain back would fence
the other writer in turn, and two writers of one chain would then take it from each other at
every append, each failing some of its own. Kafka fences a producer of its own accord too,
when a transaction outlives its timeout: that is an outage, not a takeover (``append``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from broker.audit import (
    GENESIS,
    AuditRecord,
    ChainWriter,
    CheckpointSigner,
    CheckpointVerifier,
    read_record,
)
from broker.errors import Fenced, TransportError
from broker.governance._signed import SignedTip
from broker.governance._store import AuditStore
from broker.governance._topic import read_topic
from broker.kafka import KafkaClients, Producer, abandon, stop_quietly, translated
from broker.topics import AUDIT

Build = Callable[[ChainWriter], list[AuditRecord]]
T = TypeVar("T")

#: How long an append's producer may take to start, and its transaction to commit, before the
#: append is given up (a ``TransportError``; the next one starts a new producer). A healthy
#: Kafka takes milliseconds; without a limit, a page waited for as long as Kafka was away.
#: Well under ``TRANSACTION_TIMEOUT_S``: Kafka never aborts, and so never fences, a
#: transaction we have not already given up on.
APPEND_WITHIN_S = 15.0
#: The transaction timeout the writer's producers ask for (aiokafka's default; the broker's
#: ``transaction.max.timeout.ms`` allows up to 15 minutes). Kafka's transaction coordinator
#: aborts a transaction older than this, and bumps the producer's epoch as it does: the
#: producer is then fenced as if another had started with its id.
TRANSACTION_TIMEOUT_S = 60.0


class AuditSink(Protocol):
    """Appends records, built on a writer of the sink's own chain, to the audit log."""

    async def append(self, build: Build) -> list[AuditRecord]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _since_boot() -> float:
    """Seconds on a clock that goes on while the machine is suspended (Linux's boot time),
    as the coordinator's does: a laptop asleep mid-append comes back to a transaction Kafka
    timed out, though ``time.monotonic`` saw no time pass."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


async def chain_head_on_topic(
    kafka: KafkaClients,
    chain: str,
    store: AuditStore,
    verifier: CheckpointVerifier,
    topic: str = AUDIT,
) -> tuple[int, str]:
    """The newest record of ``chain`` on the topic that this chain's writer signed: the
    index's head, then anything newer a checkpoint of ours covers.

    Every append ends with our checkpoint, so our own records are always covered; a message
    someone else put under our key (undecodable, or linking to our head without our
    signature) is passed over, and cannot stop the console or make it fork its chain.
    """
    # One snapshot: offsets read after another indexer's commit, with the head from before
    # it, would skip records and make this writer fork its own chain.
    with store.snapshot():
        head = store.heads().get(chain)
        start = store.offsets(topic)
    seq, digest = (head.seq, head.hash) if head is not None else (-1, GENESIS)
    tip: SignedTip[None] = SignedTip(chain, seq, digest, verifier)
    for m in await read_topic(kafka, topic, start=start):
        if m.key != chain.encode():
            continue
        try:
            rec = read_record(m.value or b"")
        except ValueError:
            continue
        if rec.chain == chain and rec.seq > tip.seq:
            tip.offer(rec, None)
    return tip.seq, tip.hash


class ChainAppender:
    """The one writer of ``chain``: appends records, each call sealed by a signed checkpoint."""

    def __init__(
        self,
        store: AuditStore,
        *,
        kafka: KafkaClients,
        chain: str,
        signer: CheckpointSigner,
        verifier: CheckpointVerifier,
        clock: Callable[[], datetime] = _utcnow,
        topic: str = AUDIT,
        within: float = APPEND_WITHIN_S,
        transaction_timeout: float = TRANSACTION_TIMEOUT_S,
        elapsed_clock: Callable[[], float] = _since_boot,
    ) -> None:
        self.chain = chain
        self._store = store
        self._kafka = kafka
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        self._topic = topic
        self._within = within
        self._transaction_timeout = transaction_timeout
        self._elapsed_clock = elapsed_clock
        self._producer: Producer | None = None
        self._head: tuple[int, str] | None = None
        self._fenced: str | None = None  # why, once another writer took the chain over
        self._lock = asyncio.Lock()

    async def append(self, build: Build) -> list[AuditRecord]:
        """Write ``build(writer)``'s records and a checkpoint in one transaction; return them."""
        async with self._lock:
            if self._fenced is not None:
                raise Fenced(self._fenced)
            what = f"writing to {self._topic} at {self._kafka.bootstrap}"
            began: list[float] = []  # when this append's transaction began, once it has
            try:
                async with translated(what):
                    return await self._append(build, what, began)
            except Fenced as exc:
                outlived = self._outlived(began)
                await self._reset(failed=True)
                if outlived:
                    raise TransportError(
                        f"{what}: Kafka aborted the append, which took longer than its "
                        f"transaction timeout ({self._transaction_timeout:g} s)"
                    ) from None
                self._fenced = str(exc)  # the words only: the error's frames hold the producer
                raise
            except BaseException:
                # The next append re-reads the head after a fresh fence.
                await self._reset(failed=True)
                raise

    def _outlived(self, began: list[float]) -> bool:
        """Whether a fence may be Kafka's own abort of a transaction that outlived its
        timeout, rather than another writer's start: then it is a Kafka outage, and the
        writer carries on; else it is a takeover, and the writer stays fenced.

        Why time is the evidence: aiokafka raises ``ProducerFenced`` for every
        INVALID_PRODUCER_EPOCH answer, and Kafka gives that answer both when another producer
        started with our transactional id and when its coordinator aborted our transaction
        for its age (it bumps the epoch as it aborts). Newer brokers answer a takeover with
        PRODUCER_FENCED instead, but only to newer versions of the transaction requests than
        the v0 aiokafka sends, and a produce request's answer never tells the two apart. The
        producer id and epoch aiokafka holds are ours, from before either; asking Kafka who
        initialised the id since (DescribeTransactions) returns an epoch that a takeover and
        an abort both bump. The time, though, is certain: a transaction is open at the
        coordinator only once this append began it, and the coordinator aborts none younger
        than ``transaction_timeout``. A fence within that of the beginning is another
        writer's start. A later one may be the abort (the append outlasts ``within`` only if
        the event loop stalled or the machine was suspended, which ``elapsed_clock`` counts)
        and is taken for an outage: the worst that follows is that this writer takes a real
        takeover back once, and the other one stops at its next append. A fence before the
        transaction began has no timeout behind it: a takeover.
        """
        return bool(began) and self._elapsed_clock() - began[0] >= self._transaction_timeout

    async def _append(self, build: Build, what: str, began: list[float]) -> list[AuditRecord]:
        producer = await self._ensure_started(what)
        assert self._head is not None  # noqa: S101  # set by _ensure_started
        seq, digest = self._head
        writer = ChainWriter(self.chain, clock=self._clock, next_seq=seq + 1, prev_hash=digest)
        records = build(writer)
        records.append(writer.checkpoint(self._signer))
        began.append(self._elapsed_clock())
        await self._bounded(self._transact(producer, records), what, "commit the append")
        self._head = (records[-1].seq, records[-1].hash)
        return records

    async def _transact(self, producer: Producer, records: list[AuditRecord]) -> None:
        """One transaction of ``records``. Not aiokafka's ``transaction()`` context: given up
        on, it would wait for the abort, as long as Kafka is away; the abandoned producer's
        transaction is aborted instead by the next producer's start (or Kafka's timeout).

        Given up on during the commit, the records may yet be committed (the request may have
        reached Kafka): the caller is told it failed, the look-up is then on record without
        having been shown, and the next append re-reads the head, so the chain goes on whole.
        """
        await producer.begin_transaction()
        sent = []
        for rec in records:
            future = await producer.send(self._topic, rec.to_bytes(), key=self.chain.encode())
            # A send that fails (fenced) fails the transaction; every future is retrieved,
            # or asyncio would report the ones nobody awaited as never retrieved.
            future.add_done_callback(_retrieved)
            sent.append(future)
        await asyncio.gather(*sent)
        await producer.commit_transaction()

    async def _bounded(self, step: Awaitable[T], what: str, doing: str) -> T:
        deadline = asyncio.timeout(self._within)
        try:
            async with deadline:
                return await step
        except TimeoutError:
            if not deadline.expired():
                raise
            raise TransportError(
                f"{what}: Kafka did not {doing} within {self._within:g} s"
            ) from None

    async def _ensure_started(self, what: str) -> Producer:
        if self._producer is None:
            producer = self._kafka.transactional_producer(
                f"accord-audit-{self.chain}",
                client_id=f"accord-{self.chain}",
                transaction_timeout_ms=round(self._transaction_timeout * 1000),
            )
            try:
                # Its start waits for the coordinator's producer id, without end while Kafka
                # is away. The head read that follows is not bounded: its length is how far
                # the index is behind the topic, not whether Kafka answers.
                await self._bounded(producer.start(), what, "start a producer")
            except BaseException:
                await stop_quietly(producer)
                raise
            self._producer = producer
            self._head = await chain_head_on_topic(
                self._kafka, self.chain, self._store, self._verifier, self._topic
            )
        return self._producer

    async def _reset(self, *, failed: bool = False) -> None:
        producer, self._producer, self._head = self._producer, None, None
        if producer is not None:
            # A failed one is abandoned: nothing it still holds is sent later, and the futures
            # its failure left in it (asyncio would report each as never retrieved) are
            # retrieved.
            await (abandon(producer) if failed else stop_quietly(producer))

    async def close(self) -> None:
        async with self._lock:
            await self._reset()
