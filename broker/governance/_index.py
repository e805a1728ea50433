"""``accord audit index``: ``accord.audit`` into the audit store, verified on the way in.

Exactly-once by construction rather than by consumer group: the consumed position lives in the
store (``kafka_offsets``) and is committed in the same database transaction as the rows it
produced, so a crash anywhere leaves both or neither. Re-reading records already indexed is
harmless: a record whose ``(chain, seq)`` is stored with the same hash is skipped; one with a
different hash is a fork and breaks the chain.

What is taken and what refused, and when a record stops waiting: ``_tracker``.

Two indexers may share a database (a console's, and ``accord audit review-override``'s own).
Each reads heads and offsets together, as one snapshot, and a batch commits only if the
stored offsets are still the ones it started from; otherwise it is dropped, the indexer
reloads and seeks to where the other one got, and nothing stale (an old head, a gap read as
a break) is ever written.

The database may go away under a following indexer (PostgreSQL restarting): the store's call
fails (``IndexUnavailable``), and the indexer waits, tries again with back-off, and once the
index answers reads what it committed (the batch in flight was one transaction: all of it,
or none) and reads the topic on from there, as after another indexer's batch. Logged once
each way, ``audit_index_store_unavailable`` then ``audit_index_store_back``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, AuditRecord, CheckpointVerifier
from broker.config import SchoolCalendar
from broker.errors import IndexUnavailable, TransportError
from broker.governance._encompass import overdue_encompass_notices
from broker.governance._index_kafka import (
    assign,
    at_end,
    check_ends,
    highwaters,
    read_at,
    read_to_end,
    seek_stored,
)
from broker.governance._index_restore import check_held
from broker.governance._metrics import IndexMetrics
from broker.governance._reports import OVERRIDE_REVIEW_DEADLINE, overdue_overrides
from broker.governance._store import AuditStore, is_encompass_notice
from broker.governance._tracker import ChainTracker, IndexSummary
from broker.kafka import KafkaClients, stop_bounded, translated
from broker.ops import OK, Check, Heartbeat
from broker.topics import AUDIT

__all__ = ["ChainTracker", "IndexSummary", "Indexer"]  # ChainTracker: what the tests drive

log = structlog.get_logger("accord.audit")

# Overrides and Encompass notices become overdue as time passes, not only as batches arrive:
# counted again at least this often (and after any batch that changes either). Small queries.
_OVERDUE_EVERY_S = 60.0

# Waits between tries of an index that does not answer, the last repeated: soon after a
# restart, and no busier than this while it stays away (each try is one short attempt to
# connect: the store's own, ``_sql_live``).
_STORE_RETRY_S = (1.0, 2.0, 5.0, 10.0)


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
        self.store_away = False  # the index's database stopped answering, and has not since

    def live(self) -> Check:
        return self.heartbeat.check()

    def ready(self) -> Check:
        if not self.heartbeat.beaten:
            return Check(ok=False, reason="starting")
        if self.store_away:
            return Check(ok=False, reason="index store unavailable")
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
        # Following, an idle topic is long-polled. Read to a known end (--once), a fetch has
        # nothing to wait for, and Kafka answers a connection's requests in turn: the offsets
        # requests and the stop waited out each 500 ms poll of a partition at its end. A run
        # with nothing new took 1.6 s, 0.5 s at 20 ms (docs/performance.md, policy impact).
        wait_ms = 500 if follow else 20
        consumer = self.kafka.consumer(client_id="accord-audit-index", fetch_max_wait_ms=wait_ms)
        try:
            async with translated(f"indexing {self.topic} from {self.kafka.bootstrap}"):
                await self._consume(consumer, stop, follow=follow, max_records=max_records)
        finally:
            await stop_bounded(consumer)
        return self.tracker.summary

    async def _consume(
        self, consumer: Any, stop: asyncio.Event, *, follow: bool, max_records: int | None
    ) -> int:
        seen = 0
        await consumer.start()
        tps = await assign(consumer, self.topic)
        self.tracker.partitions = len(tps)
        stored = self.tracker.sync()
        await check_ends(consumer, tps, stored)
        await check_held(consumer, tps, stored, self.store)
        await seek_stored(consumer, tps, stored)
        end = None if follow else await consumer.end_offsets(tps)
        idle, at = 0, list[int]()
        while not stop.is_set():
            self.heartbeat.beat()
            got = await consumer.getmany(*tps, timeout_ms=300, max_records=self.max_batch)
            try:
                high = highwaters(consumer, tps)  # at least what it was when ``got`` was fetched
                if self._moved_back(got, high):
                    got = await self._check_topic(consumer, tps, got)
                ended = await read_to_end(consumer, tps)
                if (got or self.tracker.expirable(ended)) and not self._commit(got, ended, high):
                    await self._read_again(consumer, tps)
                    await seek_stored(consumer, tps, self.tracker.offsets)
                self.caught_up = self.caught_up or not got
                await self._measure_lag(consumer, tps)
                if not got:  # a batch measured its backlog as it committed
                    self._measure_backlog()
            except IndexUnavailable as exc:
                if not follow:  # a run to the end says so and ends: run again, it resumes
                    raise
                await self._wait_for_store(consumer, tps, stop, exc)
                continue  # what was fetched is read again from what the index holds
            seen += sum(len(v) for v in got.values())
            idle = 0 if got else idle + 1
            if max_records is not None and seen >= max_records:
                break
            if end is None:
                continue
            if await at_end(consumer, end):
                break
            before, at = at, [await consumer.position(tp) for tp in tps]
            if at != before:  # past aborted records or markers: not a stall
                idle = 0
            if idle >= 30:
                # Kept and resumed from, but not the end: an index run to a known end must
                # not look up to date when a partition's leader is gone.
                raise TransportError(
                    f"indexing {self.topic}: no further for {idle} fetches, short of its end "
                    "(a partition without a leader?); what was read is kept, run it again"
                )
        return seen

    def _moved_back(self, got: dict[Any, list[Any]], high: Mapping[int, int]) -> bool:
        """Whether the topic ends before the stored offsets by the last fetch, or messages came
        from below them: a consumer only goes back when its position has left the topic
        (restored, recreated) and Kafka has set it to the beginning."""
        stored = self.tracker.offsets
        return any(high.get(p, o) < o for p, o in stored.items()) or any(
            msgs and msgs[0].offset < stored.get(tp.partition, 0) for tp, msgs in got.items()
        )

    async def _check_topic(
        self, consumer: Any, tps: list[Any], got: dict[Any, list[Any]]
    ) -> dict[Any, list[Any]]:
        """The start's checks under a running indexer, asked of Kafka itself before anything
        of ``got`` is taken. Passed, the topic below the stored offsets is the one the index
        read, and it reads on from them as at start: ``got`` without what lies below them, the
        consumer where the fetch left it or at them if that is further. Read again, the
        index's offsets would go back, and what it refused be counted and logged twice."""
        at = {tp: await consumer.position(tp) for tp in tps}
        stored = self.tracker.offsets
        await check_ends(consumer, tps, stored)
        await check_held(consumer, tps, stored, self.store)
        for tp, offset in at.items():
            consumer.seek(tp, max(offset, stored.get(tp.partition, 0)))
        kept = {
            tp: [m for m in msgs if m.offset >= stored.get(tp.partition, 0)]
            for tp, msgs in got.items()
        }
        return {tp: msgs for tp, msgs in kept.items() if msgs}

    def _commit(
        self,
        got: dict[Any, list[Any]],
        ended: Mapping[int, int] | None = None,
        high: Mapping[int, int] | None = None,
    ) -> bool:
        was = self.tracker.summary
        before = replace(was, breaks=list(was.breaks), refused=Counter(was.refused))
        batch = self.tracker.new_batch(high=high)
        try:
            for tp in sorted(got, key=lambda t: t.partition):
                for m in got[tp]:
                    self.tracker.offer(batch, m.key, m.value, m.partition, m.offset)
            committed = self.tracker.commit(batch, ended=ended)
        except IndexUnavailable:
            # Not counted: the batch is read again once the index answers, and counted then.
            # Had its COMMIT reached the server with the answer lost, the offsets the index
            # holds are past it and it is not read again: indexed once, but left out of this
            # run's counts and the indexed metrics (a count short, never a record).
            self.tracker.summary = before
            raise
        if not committed:
            return False
        if self.metrics is not None:
            summary = self.tracker.summary
            self.metrics.committed(summary.indexed, summary.refused, self.tracker.heads)
            if any(_touches_deadlines(r.record) for r in batch.records):
                self._overdue_counted = None  # count again now: the backlog changed
            self._measure_backlog()
        return True

    async def _wait_for_store(
        self, consumer: Any, tps: list[Any], stop: asyncio.Event, exc: IndexUnavailable
    ) -> None:
        """Until the index answers again (or ``stop``): then reload what it holds, which is
        where the topic is read on from. Alive meanwhile (it beats), not ready."""
        self.store_away = True
        log.warning(
            "audit_index_store_unavailable", topic=self.topic, why=exc.why or "connection lost"
        )
        since = time.monotonic()
        tries = 0
        while not stop.is_set():
            wait = _STORE_RETRY_S[min(tries, len(_STORE_RETRY_S) - 1)]
            tries += 1
            until = time.monotonic() + wait
            while not stop.is_set() and (left := until - time.monotonic()) > 0:
                self.heartbeat.beat()  # waiting on purpose, not stalled
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(left, 1.0))
            if stop.is_set():
                return
            try:
                self.tracker.sync()  # what was committed, the batch in flight's all or none
                await self._read_again(consumer, tps)
            except IndexUnavailable:
                continue
            await seek_stored(consumer, tps, self.tracker.offsets)
            self._overdue_counted = None  # gauged again now that it answers
            self.store_away = False
            log.info("audit_index_store_back", topic=self.topic,
                     away_s=round(time.monotonic() - since, 1), tries=tries)  # fmt: skip
            return

    async def _read_again(self, consumer: Any, tps: list[Any]) -> None:
        """Read what the tracker wants read again (refusals a valid checkpoint may undo) at exactly
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
