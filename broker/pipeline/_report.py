"""The group's offsets, brought up to what the worker's transactions committed.

The worker never reads them (it resumes from its changelog); they are there for the tools
that read a group's lag, and so that a worker rolled back to an older version resumes near
where this one stopped.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from broker.errors import TransportError
from broker.kafka import Consumer, TopicPartition, translated

log = structlog.get_logger("accord.worker")

# How often the group's offsets are brought up to what transactions committed (for tools).
REPORT_EVERY_S = 5.0


class GroupReport:
    """Offsets whose transactions committed, and the task copying them to the group."""

    def __init__(self) -> None:
        self.durable: dict[TopicPartition, int] = {}
        self._reported: dict[TopicPartition, int] = {}
        self._reported_at = 0.0
        self._reporting: asyncio.Task[None] | None = None
        # Revoked, and not taken on again since: a commit of their task still settling, or
        # aiokafka's assignment, which lists them until the join ends, must not report them.
        self._given_up: set[TopicPartition] = set()

    def committed(self, tp: TopicPartition, offset: int) -> None:
        """A transaction of ``tp``'s task committed up to ``offset``."""
        if tp not in self._given_up:
            self.durable[tp] = offset

    def taken_on(self, tp: TopicPartition, offset: int | None) -> None:
        """``tp``'s task opened, resuming at ``offset`` (None: a partition the changelog
        has never seen), which an earlier worker committed, perhaps killed before it reported
        it: reported now, or a partition with nothing new would keep the group's older one."""
        self._given_up.discard(tp)
        if offset is not None:
            self.durable[tp] = offset

    def progress(self, consumer: Consumer) -> None:
        """Every few seconds, report what committed: never ahead of a committed
        transaction; a failure is harmless and retried at the next report."""
        now = time.monotonic()
        if self._reporting is not None and not self._reporting.done():
            return
        if now - self._reported_at < REPORT_EVERY_S:
            return
        assigned = consumer.assignment()
        offsets = {
            tp: o
            for tp, o in self.durable.items()
            if tp in assigned and tp not in self._given_up and self._reported.get(tp) != o
        }
        if not offsets:
            return
        self._reported_at = now

        async def report() -> None:
            try:
                async with translated("reporting the group's offsets"):
                    await consumer.commit(offsets)
            except TransportError as exc:  # a rebalance under way: the next report catches up
                log.debug("group_offsets_not_reported", error=type(exc.__cause__).__name__)
            else:
                self._reported.update(offsets)

        self._reporting = asyncio.create_task(report(), name="accord-report-offsets")

    async def now(self, consumer: Consumer) -> None:
        """A last report on a clean stop, so the group's offsets end exactly current.

        Bounded: a stop must not hang on a group that is rebalancing. A report cancelled
        meanwhile (a revocation) ends the wait, not the stop.
        """
        await self._settled()
        self._reported_at = 0.0
        self.progress(consumer)
        await self._settled()

    async def _settled(self) -> None:
        if self._reporting is not None:
            await asyncio.wait({self._reporting}, timeout=REPORT_EVERY_S)

    async def forget(self, revoked: set[TopicPartition]) -> None:
        """Partitions given up: no longer ours to report.

        A report in flight is cancelled, not left to finish: aiokafka retries a failed
        commit under the group's current generation, so one sent before the rebalance would
        be accepted after it and move the new owner's offsets back. And if a partition comes
        back, another worker may have moved it on meanwhile: our old offset is reported
        again only once it is ours again (and then from the changelog).
        """
        self._given_up |= revoked  # first: a report started while this waits leaves them out
        if self._reporting is not None and not self._reporting.done():
            self._reporting.cancel()
            await asyncio.wait({self._reporting})
        # Again: a take-on that ended during the wait may have cleared them (review s43r5).
        self._given_up |= revoked
        for tp in revoked:
            self.durable.pop(tp, None)
            self._reported.pop(tp, None)

    @property
    def running(self) -> asyncio.Task[None] | None:
        return self._reporting
