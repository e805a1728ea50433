"""The changelog's tail: every worker reads what the others commit, as Kafka Streams reads
a global table.

From where the restore ended, a consumer of its own (no group: every partition of
``accord.worker.state``, read_committed) applies each committed entry to the worker's view:
consent filed by whichever worker holds ``accord.consent``, and the state of tasks other
workers hold, which this worker starts from if their partitions come to it.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from broker.errors import AccordError, TransportError
from broker.kafka import Consumer, KafkaClients, TopicPartition, translated
from broker.pipeline._restore import EntryReader
from broker.pipeline._tasks import close_within
from broker.pipeline._view import StateView

log = structlog.get_logger("accord.worker")


class ChangelogTail:
    """Applies committed changelog entries to ``reader``'s view as they arrive."""

    def __init__(
        self, kafka: KafkaClients, reader: EntryReader, start: dict[TopicPartition, int]
    ) -> None:
        self.kafka = kafka
        self.reader = reader
        self.positions = dict(start)
        self._consumer: Consumer | None = None
        self._marks: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Condition()

    @property
    def view(self) -> StateView:
        return self.reader.view

    async def start(self) -> None:
        self._consumer = consumer = self.kafka.consumer(client_id="accord-worker-tail")
        # Reads nothing: asks where the changelog's records end, open transactions included.
        self._marks = self.kafka.consumer(
            client_id="accord-worker-tail-marks", isolation_level="read_uncommitted"
        )
        async with translated("reading the state changelog's tail"):
            await self._marks.start()
            # Assigned (aiokafka asks only about partitions whose metadata it follows) and
            # paused (so it fetches nothing).
            self._marks.assign(list(self.positions))
            self._marks.pause(*self.positions)
            await consumer.start()
            consumer.assign(list(self.positions))
            for tp, offset in self.positions.items():
                consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run(consumer), name="accord-changelog-tail")

    async def stop(self) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                # What ended it was raised already (``check``).
                with contextlib.suppress(asyncio.CancelledError, AccordError):
                    await self._task
        finally:
            # Bounded: a stop must not wait for a Kafka that does not answer.
            clients = [c for c in (self._consumer, self._marks) if c is not None]
            await asyncio.gather(*(close_within(c) for c in clients))
            self._consumer = self._marks = self._task = None

    def check(self) -> None:
        """Raise what ended the tail, if it ended: a worker must not decide on a stale view."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise TransportError("the state changelog's tail stopped")

    async def _run(self, consumer: Consumer) -> None:
        while True:
            async with translated("reading the state changelog's tail"):
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for msgs in batch.values():
                    for m in msgs:
                        self.reader.apply(m.key, m.value, m.headers, m.timestamp)
                # A newer worker key than any held here: end the tail, and with it the worker
                # (``check``), before it decides on a view it cannot read (``_newer_keys``).
                self.reader.behind(running=True)
                # Past what was read, and past a transaction's marker too: the position, not
                # the last record's offset + 1, is how far this worker's view is current.
                moved = {tp: await consumer.position(tp) for tp in self.positions}
            if self.reader.newer.pending:
                # Not current while a consent entry waits for its key: nothing may be decided
                # (``reach``) on a view that lacks it, which may be a withdrawal.
                continue
            if moved != self.positions:
                self.positions = moved
                async with self._moved:
                    self._moved.notify_all()

    async def moved(self, within: float) -> None:
        """Wait until the tail reads on, or ``within`` seconds pass."""
        async with self._moved:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), within)

    async def caught_up(self) -> None:
        """Wait until the view holds everything committed to the changelog before now.

        "Before now" is the high watermark, not the last stable offset: a transaction left
        open by another task (a worker SIGKILLed mid-commit, until its partition's next owner
        fences it) holds the stable offset back, and the commits of a partition being handed
        over may lie beyond it. So this waits until every transaction begun before now has
        ended, one way or the other.
        """
        if self._marks is None:
            raise TransportError("the state changelog's tail is not started")
        async with translated("reading the state changelog's end offsets"):
            got = await self._marks.end_offsets(list(self.positions))
        await self.reach({TopicPartition(tp.topic, tp.partition): int(o) for tp, o in got.items()})

    async def reach(self, targets: dict[TopicPartition, int]) -> None:
        """Wait until the tail has read each changelog partition up to ``targets``."""
        async with self._moved:
            while any(self.positions.get(tp, 0) < o for tp, o in targets.items()):
                self.check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._moved.wait(), 1.0)
