"""``accord_consumer_lag``: the records waiting for this worker on each input topic.

Per topic, the sum over the partitions this worker holds of (end - position): the end is
the last stable offset (read_committed: what the worker can read), the position the
consumer's, which steps over transaction markers (the offset after the last record would
leave a lag of 1 for ever on an idle transactional topic). Refreshed by the loop at most
every ``REFRESH_S``, whether or not the partition commits: a partition paused (its sender
over budget) or wedged commits nothing, yet its records wait all the same.

Ends come with every fetch response for free. A partition not fetched (paused, or with
records buffered the loop has not taken) has none newer: aiokafka keeps the end of its last
fetch response, stale for as long as it is not fetched. Those partitions' ends are asked of
Kafka (one ListOffsets) at most every ``ASK_EVERY_S`` (aiokafka 0.14 fetches no paused
partition and updates an end only from a fetch response: tests/integration/kafka/
test_lag_paused.py), within ``ASK_WITHIN_S``: the fresh topics' gauges are written first, and
an answer that does not come leaves the stale ones' topics without a value until one does (an
older answer would read 0 while records arrive). Lag is counted in offsets, as every Kafka lag
tool counts it: a backlog's transaction markers count one each. A topic with any held
partition not measured has no value rather than a partial sum.

Records the loop fetched and has not committed (a batch waiting for consent, one pending or
one in flight) count too: the consumer's position is past them, yet a worker ending now would
leave them to be processed again, and an operator who deletes a topic once its lag is 0 must
not lose them. A partition whose position the loop does not know yet (being reset) is not
measured: asking aiokafka for it would take the group's pending error meant for the fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import structlog

from broker.kafka import Consumer, TopicPartition

if TYPE_CHECKING:
    from broker.pipeline._metrics import Metrics
    from broker.pipeline._tasks import Task

log = structlog.get_logger("accord.worker")

REFRESH_S = 1.0
ASK_EVERY_S = 10.0
ASK_WITHIN_S = 2.0  # a ListOffsets not answered by then is given up until the next refresh
STALE_AFTER_S = 3.0  # an end from a fetch response older than this is not used
POSITION_WITHIN_S = 0.5  # a position being reset (a new partition) is skipped meanwhile


class Lag:
    """The gauge's refresh: started by the loop's rounds, one at a time, in the background."""

    def __init__(
        self,
        tasks: dict[TopicPartition, Task],
        consumer: Callable[[], Consumer],
        *,
        every: float = REFRESH_S,
        ask_every: float = ASK_EVERY_S,
        uncommitted: Callable[[TopicPartition], int | None] = lambda tp: 0,  # noqa: ARG005
    ) -> None:
        self._tasks = tasks  # the loop's own dict: the partitions held now
        self._consumer = consumer
        # Records of a partition fetched and not committed; None while its position is not
        # known (the partition is then not measured).
        self._uncommitted = uncommitted
        self._every = every
        self._ask_every = ask_every
        self._due = 0.0
        self._asked_at = float("-inf")
        self._asked: dict[TopicPartition, int] = {}  # ends from ListOffsets
        self._shown: dict[str, Metrics] = {}  # topics the gauge has a value for
        self._failed: str | None = None
        self.running: asyncio.Task[None] | None = None

    def tick(self) -> None:
        """Each loop round: a refresh, if one is due and none is under way."""
        now = time.monotonic()
        if now < self._due or (self.running is not None and not self.running.done()):
            return
        self._due = now + self._every
        self.running = asyncio.create_task(self._refresh(), name="accord-consumer-lag")

    def forget(self) -> None:
        """After a revocation: topics no longer held leave the gauge, and the ends asked of
        partitions no longer held are dropped (one taken on again is asked anew)."""
        self._asked = {tp: end for tp, end in self._asked.items() if tp in self._tasks}
        held = {tp.topic for tp in self._tasks}
        for topic in [t for t in self._shown if t not in held]:
            self._shown.pop(topic).lag.remove(topic)

    async def _refresh(self) -> None:
        try:
            failed = await self._measure()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  # a gauge must never end the worker
            failed = type(exc).__name__
        if failed is not None and failed != self._failed:  # once per kind, not once a second
            log.warning("consumer_lag_unread", error=failed)
        self._failed = failed

    async def _measure(self) -> str | None:
        """Refresh the gauge; the kind of failure of a ListOffsets that went unanswered."""
        consumer = self._consumer()
        assigned = consumer.assignment()  # highwater() asserts; a rebalance may be under way
        mine = [tp for tp in list(self._tasks) if tp in assigned]
        # Where the consumer is not known, aiokafka's position() would take the group's
        # pending error meant for the loop's fetch: neither its position nor its end is asked.
        known = [tp for tp in mine if self._uncommitted(tp) is not None]
        ends: dict[TopicPartition, int] = {}
        for tp in known:
            if (end := _fetched_end(consumer, tp)) is not None:
                ends[tp] = end
        stale = [tp for tp in known if tp not in ends]
        failed = None
        if stale and (
            time.monotonic() >= self._asked_at + self._ask_every
            or any(tp not in self._asked for tp in stale)
        ):
            # First the topics that need no answer: one not coming must not hold them back.
            waiting = {tp.topic for tp in stale}
            await self._show(consumer, [tp for tp in mine if tp.topic not in waiting], ends)
            self._asked_at = time.monotonic()
            try:
                async with asyncio.timeout(ASK_WITHIN_S):
                    got = await consumer.end_offsets(stale)
            except Exception as exc:  # noqa: BLE001  # a gauge must never end the worker
                failed = type(exc).__name__
                # No end known for them now: an older answer would read 0 while records
                # arrive on a paused partition for as long as Kafka does not answer.
                for tp in stale:
                    self._asked.pop(tp, None)
            else:
                self._asked = {
                    TopicPartition(tp.topic, tp.partition): int(o) for tp, o in got.items()
                }
        ends |= {tp: self._asked[tp] for tp in stale if tp in self._asked}
        await self._show(consumer, mine, ends)
        return failed

    async def _show(
        self, consumer: Consumer, mine: list[TopicPartition], ends: Mapping[TopicPartition, int]
    ) -> None:
        """Each topic's gauge: over its partitions, what waits to be fetched plus what was
        fetched and not committed. A topic with any held partition not measured (its end,
        its position or its held records not known) has no value rather than a partial sum:
        operators delete an agency's ingress topic when it reads 0."""
        tps = [tp for tp in mine if tp in ends]
        positions = await asyncio.gather(*(_position(consumer, tp) for tp in tps))
        unmeasured = {tp.topic for tp in mine if tp not in ends}
        behind: dict[str, int] = {}
        for tp, position in zip(tps, positions, strict=True):
            # Read after the positions: a fetch in between is counted twice, never missed.
            held = self._uncommitted(tp)
            if position is None or held is None:
                unmeasured.add(tp.topic)
                continue
            behind[tp.topic] = behind.get(tp.topic, 0) + max(0, ends[tp] - position) + held
        for topic in unmeasured:
            behind.pop(topic, None)
            if (shown := self._shown.pop(topic, None)) is not None:
                shown.lag.remove(topic)
        for topic, records in behind.items():
            task = next((t for tp, t in self._tasks.items() if tp.topic == topic), None)
            if task is None:
                continue  # revoked while this refresh waited
            metrics = task.processor.outbox.metrics
            metrics.lag.labels(topic=topic).set(records)
            self._shown[topic] = metrics
        self.forget()


def _fetched_end(consumer: Consumer, tp: TopicPartition) -> int | None:
    """``tp``'s end as the last fetch response gave it, if that is recent."""
    polled = consumer.last_poll_timestamp(tp)
    if polled is None or time.time() * 1000 - polled > STALE_AFTER_S * 1000:
        return None
    stable = consumer.last_stable_offset(tp)
    return stable if stable is not None and stable >= 0 else consumer.highwater(tp)


async def _position(consumer: Consumer, tp: TopicPartition) -> int | None:
    """The consumer's next offset on ``tp`` (no request when known); None while reset."""
    if tp not in consumer.assignment():
        return None  # revoked meanwhile
    try:
        async with asyncio.timeout(POSITION_WITHIN_S):
            return await consumer.position(tp)
    except TimeoutError:
        return None


def uncommitted(
    consumer: Consumer | None, tp: TopicPartition, fetched: int | None, committed: int | None
) -> int | None:
    """How many of ``tp``'s records the loop fetched (up to ``fetched``) and has not committed
    (up to ``committed``): a batch waiting for consent, pending or in flight. None while where
    the consumer is on ``tp`` is not known: a new partition before aiokafka first fetched it
    (an empty one it has fetched has its position, and none of its records is held).

    Both ends are offsets after a record (never after a marker): the fetched records' last,
    and the last committed, else where the task resumed or its first record."""
    if fetched is None:
        if consumer is None or tp not in consumer.assignment():
            return None
        return 0 if consumer.last_poll_timestamp(tp) is not None else None
    if committed is None:  # given up mid-revocation: not known, so not measured
        return None
    return max(0, fetched - committed)
