"""``accord audit index``: ``accord.audit`` into the audit store, verified on the way in.

Exactly-once by construction rather than by consumer group: the consumed position lives in the
store (``kafka_offsets``) and is committed in the same database transaction as the rows it
produced, so a crash anywhere leaves both or neither. Re-reading records already indexed is
harmless: a record whose ``(chain, seq)`` is stored with the same hash is skipped; one with a
different hash is a fork and breaks the chain.

Only what a chain's writer signed is indexed (``_signed``): a record on a chain of a known
writer (``worker:*``, ``console:*``), of a kind that writer may write, waits until a
checkpoint signed by that writer's key covers it. Everything else (an undecodable message, a
foreign chain, a record that does not link, a fork nobody signed, a rewrite of indexed
history) is *refused*: kept in ``audit_refused`` with its position and why, reported, and never
allowed to break or fork a genuine chain. A chain breaks only on signed evidence (a checkpoint
that verifies but does not link to what is held): indexing that chain stops, ``chain_heads``
records where and why, and it is reported loudly; other chains carry on.

The stored offset of a partition never passes a record still waiting for its checkpoint, so
an indexer that restarts reads it again. A record waits only until its partition has been
read to its end: every writer commits its checkpoint in the same transaction as the records
it covers, so a record still unsigned then was never signed, and is refused
(``not-signed-by-writer``) instead of holding the offset, and the unsigned alarm, for ever.
Refused is not lost: when a checkpoint that verifies does not link to what is held, and
``audit_refused`` holds records of that chain refused so (a quiet chain whose last checkpoint
was signed by a key revoked before a run read it, say), the indexer reads exactly those
offsets again, and the checkpoint covers them if its hash links run through them; only if it
still does not link is the chain broken.

Two indexers may share a database (a console's, and ``accord audit review-override``'s own).
Each reads heads and offsets together, as one snapshot, and a batch commits only if the
stored offsets are still the ones it started from; otherwise it is dropped, the indexer
reloads and seeks to where the other one got, and nothing stale (an old head, a gap read as
a break) is ever written.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from broker.audit import (
    GENESIS,
    AuditKind,
    AuditRecord,
    CheckpointVerifier,
    chain_writer,
    may_write,
    read_record,
)
from broker.config import SchoolCalendar
from broker.errors import ChainBroken
from broker.governance._encompass import overdue_encompass_notices
from broker.governance._index_kafka import assign, at_end, read_at, read_to_end, seek_stored
from broker.governance._metrics import IndexMetrics
from broker.governance._reports import OVERRIDE_REVIEW_DEADLINE, overdue_overrides
from broker.governance._signed import Offered, SignedTip, misplaced
from broker.governance._store import (
    AuditStore,
    ChainHead,
    IndexBatch,
    IndexedRecord,
    RefusedMessage,
    is_encompass_notice,
)
from broker.kafka import KafkaClients, stop_quietly, translated
from broker.ops import OK, Check, Heartbeat
from broker.topics import AUDIT

log = structlog.get_logger("accord.audit")

# Overrides and Encompass notices become overdue as time passes, not only as batches arrive:
# counted again at least this often (and after any batch that changes either). Small queries.
_OVERDUE_EVERY_S = 60.0


@dataclass
class IndexSummary:
    indexed: int = 0
    duplicates: int = 0
    skipped_broken: int = 0
    breaks: list[ChainBroken] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # by reason


Position = tuple[int, int]  # partition, offset


class ChainTracker:
    """Verifies records one at a time against each chain's head; builds the batch to commit."""

    def __init__(
        self,
        store: AuditStore,
        verifier: CheckpointVerifier,
        *,
        topic: str = AUDIT,
        partitions: int | None = None,
    ) -> None:
        self._store = store
        #: The topic's partitions: a chain's records must be on its key's (``misplaced``).
        self.partitions = partitions
        self._verifier = verifier
        self.topic = topic
        self.summary = IndexSummary()
        self.heads: dict[str, ChainHead] = {}
        self.offsets: dict[int, int] = {}
        self._pending: dict[tuple[str, int], str] = {}
        self._tips: dict[str, SignedTip[Position]] = {}
        self._read: dict[int, int] = {}  # the offset after the last message offered
        #: Chains whose signed checkpoint does not link, and where the records of theirs
        #: refused as unsigned are: read them from the topic and ``restore`` them.
        self.wanted: dict[str, list[Position]] = {}
        # Read again this run (kept across ``sync``): offered back to each new tip.
        self._restored: dict[str, list[tuple[AuditRecord, Position]]] = {}
        self._reread: set[Position] = set()
        self._before = self.summary
        self.sync()

    def sync(self) -> dict[int, int]:
        """Reload heads and ``topic``'s offsets as the index holds them now; return the offsets.

        One snapshot: heads read before another indexer's commit and offsets read after it
        would make every record in between look missing.
        """
        with self._store.snapshot():
            self.heads = self._store.heads()
            self.offsets = self._store.offsets(self.topic)
        self._pending = {}
        self._tips = {}  # what waited is read again from the stored offsets
        self._read = {}
        return dict(self.offsets)

    def new_batch(self) -> IndexBatch:
        self._pending = {}
        self._before = replace(
            self.summary, breaks=list(self.summary.breaks), refused=Counter(self.summary.refused)
        )
        return IndexBatch(self.topic, base_offsets=dict(self.offsets))

    @property
    def waiting(self) -> int:
        """Records read but not yet covered by their writer's checkpoint."""
        return sum(len(t.waiting) for t in self._tips.values())

    def held(self) -> list[AuditRecord]:
        """The records waiting for their writer's checkpoint."""
        return [rec for tip in self._tips.values() for rec, _ in tip.waiting]

    def held_on(self, partitions: Collection[int]) -> bool:
        """Whether a record on one of ``partitions`` waits for its writer's checkpoint."""
        return any(w[0] in partitions for tip in self._tips.values() for _, w in tip.waiting)

    def commit(self, batch: IndexBatch, *, ended: Collection[int] | None = None) -> bool:
        """Apply ``batch``; False if another indexer moved the index first, or if refused
        records are ``wanted`` again (either way reloaded: read on from ``offsets``).

        ``ended``: the partitions read to their end (the last stable offset) by now; None
        means every partition this batch read from (a caller that offered all there is).
        What still waits there was never signed by its writer: it is refused, and no longer
        holds the stored offset back.
        """
        if self.wanted:  # the batch is read again once they are restored
            self.summary = self._before
            self.sync()
            return False
        for partition in batch.offsets if ended is None else ended:
            self._expire(batch, partition)
        for tip in self._tips.values():  # never store an offset past a record still waiting
            for _, (partition, offset) in tip.waiting:
                if partition in batch.offsets:
                    batch.offsets[partition] = min(batch.offsets[partition], offset)
        if self._store.apply(batch):
            self.offsets.update(batch.offsets)
            return True
        self.summary = self._before
        self.sync()
        log.info("audit_index_moved", topic=self.topic)
        return False

    def _expire(self, batch: IndexBatch, partition: int) -> None:
        refused = [
            r for tip in self._tips.values() for r in tip.expire(lambda w: w[0] == partition)
        ]
        for r in refused:
            self._refuse(batch, r.where, None, r.reason, rec=r.record)
        if refused and partition in self._read:  # an empty batch: move past them too
            batch.offsets[partition] = self._read[partition]

    def offer(
        self,
        batch: IndexBatch,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
    ) -> None:
        """Take one message from the topic; only records their writer signed enter ``batch``."""
        batch.offsets[partition] = self._read[partition] = offset + 1
        where = (partition, offset)
        try:
            rec = read_record(value or b"")
        except ValueError:
            chain = key.decode("utf-8", "replace")[:200] if key else None
            self._refuse(batch, where, value, "undecodable", chain=chain)
            return
        if not may_write(rec.chain, rec.kind):
            reason = "foreign-chain" if chain_writer(rec.chain) is None else "kind-not-allowed"
            self._refuse(batch, where, value, reason, rec=rec)
            return
        if (placed := misplaced(key, rec.chain, partition, self.partitions)) is not None:
            self._refuse(batch, where, value, placed, rec=rec)
            return
        head = self._head(rec.chain)
        if self._skipped(head):
            return
        if rec.seq <= head.seq:
            stored = self._pending.get((rec.chain, rec.seq)) or self._store.stored_hash(
                rec.chain, rec.seq
            )
            if stored == rec.hash and rec.computed_hash() == rec.hash:
                self.summary.duplicates += 1
            else:  # someone rewriting signed history: refused, the chain stands
                self._refuse(batch, where, value, "conflicts-with-indexed", rec=rec)
            return
        tip = self._tips.get(rec.chain)
        if tip is None:
            tip = self._tips[rec.chain] = SignedTip(rec.chain, head.seq, head.hash, self._verifier)
            tip.restore(self._restored.get(rec.chain, ()))
        try:
            offered = tip.offer(rec, where)
        except ChainBroken as exc:
            if not self._want(head, rec):
                self._break(batch, head, exc)
            return
        self._take(batch, offered)

    def _skipped(self, head: ChainHead) -> bool:
        """A broken chain is indexed no further; one whose refused records are ``wanted``
        waits for them (this batch is dropped, and read again once they are restored)."""
        if head.broken_seq is not None:
            self.summary.skipped_broken += 1
        return head.broken_seq is not None or head.chain in self.wanted

    def _want(self, head: ChainHead, checkpoint: AuditRecord) -> bool:
        """Whether records of the chain refused as unsigned (this run or an earlier one) may
        fill the gap before ``checkpoint``: then they are ``wanted``, once each per run."""
        found = self._store.unsigned_refusals(self.topic, head.chain, head.seq, checkpoint.seq)
        fresh = [at for at in found if at not in self._reread]
        if fresh:
            self.wanted[head.chain] = fresh
        return bool(fresh)

    def restore(self, messages: Collection[tuple[bytes | None, bytes | None, int, int]]) -> None:
        """Take back the ``wanted`` messages ``(key, value, partition, offset)``, read again
        from the topic: each new tip of their chain is offered them (``SignedTip.restore``)."""
        asked = {at: chain for chain, where in self.wanted.items() for at in where}
        for key, value, partition, offset in messages:
            chain = asked.get((partition, offset))
            try:
                rec = read_record(value or b"")
            except ValueError:
                continue
            if chain is None or rec.chain != chain or key != chain.encode():
                continue  # not what was refused there: a checkpoint never covers it by this
            self._restored.setdefault(chain, []).append((rec, (partition, offset)))
        self._reread.update(asked)
        log.info("audit_refused_read_again", chains=sorted(self.wanted), messages=len(asked))
        self.wanted = {}

    def _take(self, batch: IndexBatch, offered: Offered[Position]) -> None:
        for refused in offered.refused:
            self._refuse(batch, refused.where, None, refused.reason, rec=refused.record)
        batch.unrefused += offered.unrefused
        for rec, (partition, offset) in offered.covered:
            batch.records.append(IndexedRecord(rec, partition, offset))
            self._pending[(rec.chain, rec.seq)] = rec.hash
            self.heads[rec.chain] = batch.heads[rec.chain] = ChainHead(rec.chain, rec.seq, rec.hash)
            self.summary.indexed += 1
        if offered.covered:  # the checkpoint that covered them: the one that verifies
            newest = offered.covered[-1][0]
            batch.checkpoints[newest.chain] = newest

    def _refuse(
        self,
        batch: IndexBatch,
        where: Position,
        value: bytes | None,
        reason: str,
        *,
        rec: AuditRecord | None = None,
        chain: str | None = None,
    ) -> None:
        """Keep a message out of the index, and a note of it (no content: only where, why and
        a digest); it changes no chain."""
        body = rec.to_bytes() if rec is not None else (value or b"")
        batch.refused.append(
            RefusedMessage(
                partition=where[0],
                offset=where[1],
                chain=rec.chain if rec is not None else chain,
                seq=rec.seq if rec is not None else None,
                reason=reason,
                digest=hashlib.sha256(body).hexdigest()[:32],
            )
        )
        self.summary.refused[reason] += 1
        log.warning("audit_message_refused", reason=reason, partition=where[0], offset=where[1])

    def _head(self, chain: str) -> ChainHead:
        return self.heads.get(chain) or ChainHead(chain, -1, GENESIS)

    def _break(self, batch: IndexBatch, head: ChainHead, exc: ChainBroken) -> None:
        if head.broken_seq is not None:
            self.summary.skipped_broken += 1
            return
        broken = replace(head, broken_seq=exc.seq, error=exc.what)
        self.heads[head.chain] = batch.heads[head.chain] = broken
        self.summary.breaks.append(exc)
        log.error("audit_chain_broken", chain=head.chain, seq=exc.seq, what=exc.what)


class Indexer:
    """Consumes the audit topic (read_committed) into ``store`` from the offsets it holds.

    With a ``registry`` it counts what it indexes and refuses there, and gauges what waits
    (records no checkpoint covers yet, overrides past ``review_deadline`` unreviewed,
    Operation Encompass notices past their deadline on the ``schools`` calendar unread);
    ``live()`` and ``ready()`` answer an ops server's probes (ready: consuming, and caught up
    at least once). ``clock`` is wall-clock time (Unix seconds).
    """

    def __init__(
        self,
        store: AuditStore,
        verifier: CheckpointVerifier,
        kafka: KafkaClients,
        *,
        topic: str = AUDIT,
        max_batch: int = 500,
        registry: CollectorRegistry | None = None,
        stale_after: float = 30.0,
        review_deadline: timedelta = OVERRIDE_REVIEW_DEADLINE,
        schools: SchoolCalendar | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.topic = topic
        self.kafka = kafka
        self.max_batch = max_batch
        self.tracker = ChainTracker(store, verifier, topic=topic)
        self.metrics = IndexMetrics(registry, clock=clock) if registry is not None else None
        self.review_deadline = review_deadline
        self.schools = schools or SchoolCalendar()
        self._clock = clock
        self._overdue_counted: float | None = None  # monotonic time of the last count
        self.heartbeat = Heartbeat(stale_after)
        self.caught_up = False  # a poll has found nothing new: the index was current then

    def live(self) -> Check:
        return self.heartbeat.check()

    def ready(self) -> Check:
        if not self.heartbeat.beaten:
            return Check(ok=False, reason="starting")
        if not self.caught_up:
            return Check(ok=False, reason="catching up")
        return OK

    async def run(
        self,
        *,
        follow: bool,
        stop: asyncio.Event | None = None,
        max_records: int | None = None,
    ) -> IndexSummary:
        """Index until the end of the topic (``follow=False``), or until ``stop`` is set.

        ``max_records`` stops after about that many messages (whole batches): a way to
        interrupt the indexer mid-stream in tests.
        """
        stop = stop or asyncio.Event()
        consumer = self.kafka.consumer(client_id="accord-audit-index", fetch_max_wait_ms=500)
        try:
            async with translated(f"indexing {self.topic} from {self.kafka.bootstrap}"):
                await self._consume(consumer, stop, follow=follow, max_records=max_records)
        finally:
            await stop_quietly(consumer)
        return self.tracker.summary

    async def _consume(
        self, consumer: Any, stop: asyncio.Event, *, follow: bool, max_records: int | None
    ) -> int:
        seen = 0
        await consumer.start()
        tps = await assign(consumer, self.topic)
        self.tracker.partitions = len(tps)
        await seek_stored(consumer, tps, self.tracker.sync())
        end = None if follow else await consumer.end_offsets(tps)
        idle = 0
        while not stop.is_set():
            self.heartbeat.beat()
            got = await consumer.getmany(*tps, timeout_ms=300, max_records=self.max_batch)
            ended = await read_to_end(consumer, tps)
            if (got or self.tracker.held_on(ended)) and not self._commit(got, ended):
                await self._read_again(consumer, tps)
                await seek_stored(consumer, tps, self.tracker.offsets)
            self.caught_up = self.caught_up or not got
            await self._measure_lag(consumer, tps)
            if not got:  # a batch measured its backlog as it committed
                self._measure_backlog()
            seen += sum(len(v) for v in got.values())
            idle = 0 if got else idle + 1
            if max_records is not None and seen >= max_records:
                break
            if end is not None and (await at_end(consumer, end) or idle >= 30):
                break
        return seen

    def _commit(self, got: dict[Any, list[Any]], ended: Collection[int] | None = None) -> bool:
        batch = self.tracker.new_batch()
        for tp in sorted(got, key=lambda t: t.partition):
            for m in got[tp]:
                self.tracker.offer(batch, m.key, m.value, m.partition, m.offset)
        if not self.tracker.commit(batch, ended=ended):
            return False
        if self.metrics is not None:
            summary = self.tracker.summary
            self.metrics.committed(summary.indexed, summary.refused, self.tracker.heads)
            if any(_touches_deadlines(r.record) for r in batch.records):
                self._overdue_counted = None  # count again now: the backlog changed
            self._measure_backlog()
        return True

    async def _read_again(self, consumer: Any, tps: list[Any]) -> None:
        """Read what the tracker wants read again (records refused as unsigned) at exactly
        their offsets: ``accord.audit`` keeps every record for ever."""
        wanted = sorted(at for where in self.tracker.wanted.values() for at in where)
        if wanted:
            self.tracker.restore(await read_at(consumer, tps, wanted))

    def _measure_backlog(self) -> None:
        """Gauge what waits: records for a checkpoint, overrides for a review (throttled)."""
        if self.metrics is None:
            return
        self.metrics.holding(self.tracker.held())
        now = time.monotonic()
        if self._overdue_counted is not None and now - self._overdue_counted < _OVERDUE_EVERY_S:
            return
        self._overdue_counted = now
        self.measure_deadlines()

    def measure_deadlines(self) -> None:
        """Count, at the clock's time, overrides past their review deadline and Encompass
        notices past theirs, unacknowledged (unthrottled: ``_measure_backlog`` throttles)."""
        if self.metrics is None:
            return
        at = datetime.fromtimestamp(self._clock(), UTC)
        overdue = overdue_overrides(self.store, at, deadline=self.review_deadline)
        self.metrics.overrides_overdue.set(len(overdue))
        self.metrics.encompass(overdue_encompass_notices(self.store, self.schools, at))

    async def _measure_lag(self, consumer: Any, tps: list[Any]) -> None:
        if self.metrics is None:
            return
        behind = 0
        for tp in tps:
            high = consumer.highwater(tp)  # None until a fetch from that partition
            if high is not None:
                behind += max(0, high - await consumer.position(tp))
        self.metrics.lag.set(behind)


def _touches_deadlines(rec: AuditRecord) -> bool:
    """What changes the overrides awaiting review (an override decision, a review) or the
    Encompass notices awaiting their school (a notice, an opening)."""
    if rec.kind in (AuditKind.OVERRIDE_REVIEWED, AuditKind.OPENED):
        return True
    if rec.kind is not AuditKind.DECIDED:
        return False
    return rec.data.get("outcome") == "shared_override" or is_encompass_notice(rec)
