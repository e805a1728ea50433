"""The loop's commits: each task's transaction started when due, reaped when Kafka answers,
and, on a clean stop, the last ones within ``STOP_WITHIN_S``.

A task has at most one commit in flight; while it runs, the loop processes into the task's
next batch. A commit that failed is raised where it is reaped: failure is crash-only.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from broker.errors import TransportError
from broker.kafka import TopicPartition
from broker.pipeline._report import GroupReport
from broker.pipeline._tasks import STOP_WITHIN_S, Batch, RecordSender, Task, settle_all

log = structlog.get_logger("accord.worker")


class Commits:
    """The commits of the tasks in ``tasks`` (the loop's own dict, which rebalances change)."""

    def __init__(self, tasks: dict[TopicPartition, Task], report: GroupReport) -> None:
        self._tasks = tasks
        self._report = report
        self._sender = RecordSender()

    def start_due(self) -> None:
        for task in self._tasks.values():
            if task.in_flight is None and not task.closed and task.due():
                done = task.close_batch()
                task.in_flight = asyncio.create_task(
                    task.commit(done, self._sender.send_all), name=f"accord-commit-{task.tp}"
                )

    def reap(self) -> None:
        """Commits that ended: a failure ends the loop; a success moves offsets and metrics."""
        for task in self._tasks.values():
            running = task.in_flight
            if running is None or not running.done():
                continue
            task.in_flight = None
            self._committed(task, running.result())

    def _committed(self, task: Task, done: Batch) -> None:
        """``done`` committed on ``task``: its records' latency, and the offset the group's
        report may now move to. (Lag is ``_lag``'s: a partition paused commits nothing.)"""
        now_ms = time.time() * 1000
        metrics = task.processor.outbox.metrics
        for ts in done.stamps:
            metrics.latency.observe(max(0.0, (now_ms - ts) / 1000))
        if done.resealed is not None:
            # Only now: operators wait for this before revoking the old worker key.
            log.info("state_resealed", entries=done.resealed)
        if done.next_offset is None:
            return
        self._report.committed(task.tp, done.next_offset)

    async def finish(self) -> None:
        """On a clean stop: every task's last batch, checkpoint and head, committed, within
        ``STOP_WITHIN_S`` (a stop must not wait for Kafka's return)."""
        try:
            async with asyncio.timeout(STOP_WITHIN_S):
                await self._commit_last()
        except TimeoutError:
            await settle_all(list(self._tasks.values()), within=0)  # the others', cancelled
            raise TransportError(
                f"stopping: Kafka did not confirm the last commits within {STOP_WITHIN_S:g} s; "
                "the worker stops without them, and its next start resumes from what committed"
            ) from None

    async def _commit_last(self) -> None:
        # A rebalance may run at each await here and pop tasks: iterate over copies, and make
        # the last commits each task's commit in flight, so that a revocation waits for it.
        for task in list(self._tasks.values()):
            await self._settle(task)
        batches = [(task, task.close_batch()) for task in list(self._tasks.values())]
        for task, b in batches:
            if b.outs:
                task.in_flight = asyncio.create_task(task.commit(b, self._sender.send_all))
        for task, _ in batches:
            await self._settle(task)

    async def _settle(self, task: Task) -> None:
        """Wait for ``task``'s commit in flight and count it as :meth:`reap` would: one the
        stop's round started carries the offset the last report of the group's offsets must."""
        running = task.in_flight
        await task.settle()
        if running is not None and self._tasks.get(task.tp) is task:  # else revoked meanwhile
            self._committed(task, running.result())
