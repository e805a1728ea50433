"""Consent before events, the wait itself: a batch's contact events are held back until this
worker's consent table is current (broker.pipeline._loop), the consent partitions it owns
fetched and filed and those other workers own read from the changelog, up to end offsets that
cover the events (``_fence``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog

from broker.kafka import Consumer, TopicPartition
from broker.pipeline._fence import ConsentFence
from broker.pipeline._group import Handover
from broker.pipeline._state import TaskId
from broker.pipeline._tasks import Task, meanwhile
from broker.topics import CONSENT

__all__ = ["ConsentWait"]

log = structlog.get_logger("accord.worker")

Batch = dict[TopicPartition, list[Any]]


class _Fetch(Protocol):
    """The loop's fetch: the next records of ``partitions``, positions moved past them."""

    def __call__(self, consumer: Consumer, *partitions: TopicPartition) -> Awaitable[Batch]: ...


class ConsentWait:
    """One loop's wait for consent; it shares the loop's tasks and positions, and runs the
    loop's own fetch, processing and between-rounds step (``go_on``) while it waits."""

    def __init__(
        self,
        *,
        fence: ConsentFence,
        tasks: Mapping[TopicPartition, Task],
        positions: Mapping[TopicPartition, int],
        fetch: _Fetch,
        run: Callable[[TopicPartition, list[Any], int], Awaitable[None]],
        go_on: Callable[[], None],
    ) -> None:
        self._fence = fence
        self._tasks = tasks
        self._positions = positions
        self._fetch = fetch
        self._run = run
        self._go_on = go_on
        self._settled: dict[TopicPartition, int] = {}  # others' consent progress, applied

    async def current(
        self,
        handover: Handover,
        consumer: Consumer,
        stop: asyncio.Event,
        events: Batch,
        fetch: int,
    ) -> bool:
        """Wait until the table holds every consent record on ``accord.consent`` appended
        before any of ``events`` (from fetch number ``fetch``) was; ``handover`` is the
        loop's, as it is now (other workers' progress is read in its committed view).

        False if the worker is stopping meanwhile (the events wait for the next run).
        """
        said = False
        while not (parts := sorted(consumer.partitions_for_topic(CONSENT) or ())):
            # Not known (metadata lost the topic, or it is not provisioned): with no consent
            # offsets to wait for, deciding now could miss a withdrawal. Default-deny: wait.
            if stop.is_set():
                return False
            if not said:  # once a wait: it beats the heartbeat, so it may go on a long time
                log.warning("consent_partitions_unknown")
                said = True
            self._go_on()
            await handover.moved(within=0.5)
        tps = [TopicPartition(CONSENT, p) for p in parts]
        last = {TopicPartition(tp.topic, tp.partition): m[-1].offset for tp, m in events.items()}
        go_on = self._go_on  # while Kafka is waited for, a failure ends it
        covering = self._fence.covering(tps, last, fetch)
        if (got := await meanwhile(covering, stop, self._tasks, go_on)) is None:
            return False
        ends = got.result()
        while not stop.is_set():
            # Commits go on meanwhile: another worker may be waiting for the consent this
            # one files, as this one may be for another's.
            go_on()
            mine = [tp for tp in tps if tp in self._tasks and self._positions.get(tp, 0) < ends[tp]]
            if mine:  # ours, not fetched yet: fetch and file them now
                # During a join, aiokafka's fetch does not return until the join ends.
                fetching = self._fetch(consumer, *mine)
                if (fetched := await meanwhile(fetching, stop, self._tasks, go_on)) is None:
                    return False
                for tp, msgs in fetched.result().items():
                    await self._run(tp, msgs, self._fence.fetches)
                continue
            view = handover.view.tasks
            others = {tp: view[TaskId(tp.topic, tp.partition)].offset or 0
                      for tp in tps if tp not in self._tasks}  # fmt: skip
            if all(others[tp] >= ends[tp] for tp in others):
                if any(self._settled.get(tp) != o for tp, o in others.items()):
                    # Their offsets and the consent they filed may sit on different
                    # partitions of the changelog: read it all up to now.
                    reading = handover.caught_up()
                    if (read := await meanwhile(reading, stop, self._tasks, go_on)) is None:
                        return False
                    read.result()
                    self._settled = others
                return True
            await handover.moved(within=0.5)
        return False
