"""Appending to one audit chain on ``accord.audit`` from outside the worker.

The governance console and ``accord audit review-override`` write records of their own (an
officer's look-up, an override's review). Each writer owns a chain, ``console:<host>``, and a
transactional producer whose id is derived from that chain: starting it fences any earlier
writer of the chain and aborts its open transaction, so the head read next cannot move under
us. Every append is one transaction holding the new records and a signed checkpoint over them,
so truncation of a console chain is as detectable as truncation of the worker's.

If a send fails (Kafka away), nothing of that append was committed: the writer forgets its
producer, and the next append starts a new one and re-reads the head from the topic. The
caller learns of the failure as a ``TransportError`` and must not act as if the record exists.
A writer another process fenced (it started a producer with the chain's id) stays fenced:
every later append raises ``Fenced`` at once. Taking the chain back would fence the other
writer in turn, and two writers of one chain would then take it from each other at every
append, each failing some of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from broker.audit import (
    GENESIS,
    AuditRecord,
    ChainWriter,
    CheckpointSigner,
    CheckpointVerifier,
    read_record,
)
from broker.errors import Fenced
from broker.governance._signed import SignedTip
from broker.governance._store import AuditStore
from broker.governance._topic import read_topic
from broker.kafka import KafkaClients, Producer, abandon, stop_quietly, translated
from broker.topics import AUDIT

Build = Callable[[ChainWriter], list[AuditRecord]]


class AuditSink(Protocol):
    """Appends records, built on a writer of the sink's own chain, to the audit log."""

    async def append(self, build: Build) -> list[AuditRecord]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
    ) -> None:
        self.chain = chain
        self._store = store
        self._kafka = kafka
        self._signer = signer
        self._verifier = verifier
        self._clock = clock
        self._topic = topic
        self._producer: Producer | None = None
        self._head: tuple[int, str] | None = None
        self._fenced: str | None = None  # why, once another writer took the chain over
        self._lock = asyncio.Lock()

    async def append(self, build: Build) -> list[AuditRecord]:
        """Write ``build(writer)``'s records and a checkpoint in one transaction; return them."""
        async with self._lock:
            if self._fenced is not None:
                raise Fenced(self._fenced)
            try:
                async with translated(f"writing to {self._topic} at {self._kafka.bootstrap}"):
                    return await self._append(build)
            except Fenced as exc:
                self._fenced = str(exc)  # the words only: the error's frames hold the producer
                await self._reset(failed=True)
                raise
            except BaseException:
                # The next append re-reads the head after a fresh fence.
                await self._reset(failed=True)
                raise

    async def _append(self, build: Build) -> list[AuditRecord]:
        producer = await self._ensure_started()
        assert self._head is not None  # noqa: S101  # set by _ensure_started
        seq, digest = self._head
        writer = ChainWriter(self.chain, clock=self._clock, next_seq=seq + 1, prev_hash=digest)
        records = build(writer)
        records.append(writer.checkpoint(self._signer))
        async with producer.transaction():
            for rec in records:
                sent = await producer.send(self._topic, rec.to_bytes(), key=self.chain.encode())
                # A send that fails (fenced) fails the transaction, which says so; its own
                # future is retrieved, or asyncio would report it as never retrieved.
                sent.add_done_callback(_retrieved)
        self._head = (records[-1].seq, records[-1].hash)
        return records

    async def _ensure_started(self) -> Producer:
        if self._producer is None:
            producer = self._kafka.transactional_producer(
                f"accord-audit-{self.chain}", client_id=f"accord-{self.chain}"
            )
            try:
                await producer.start()
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
