"""The flag service's first step, read with our own consumer rather than faust's.

The party's delivery topic is written by the worker in transactions, so every commit marker
takes an offset and the records' offsets have holes. faust-streaming 0.15's at-least-once
offset tracking goes wrong on such holes (faust-streaming issue #606, "Wrong offset commit in
case of gaps", open): in our crash test the service's committed offset on the delivery topic
stayed far behind what it had processed, and after a SIGKILL the restarted service re-read from
there and then jumped ahead, passing over sixteen deliveries, so one child's flag was never
raised. That is a lost safeguarding signal, not a slow one.

So this step reads the delivery topic with an aiokafka consumer of our own (read_committed,
group ``accord.desk.<party>.flags-open``, never committing on its own): per batch, every
record is opened, then sent on re-keyed in arrival order (below), every send is acknowledged
by Kafka, and only then are the batch's offsets committed. A crash repeats records after the
last commit and never skips one; the flag step downstream ignores a record it has already
seen. The re-keyed topics are faust's own (written without transactions) and the agents
and tables after them stay faust's.

Arrival order, which the flag rules' "ties in arrival order" and a late record's backward
look depend on, is this order: each partition's records in their own order, the partitions'
interleaved by the time the worker stamped on them, and records stamped in the same
millisecond by their ``occurred_at``. That is all it promises. The worker stamps each record
as it adds it to its producer's batch, and an agency's file is keyed by event id over
several ingress partitions, each worked in its own transaction: the records of one file
carry many milliseconds (a review counted 22 over 2,000 records of one batch), and keep the
order the worker wrote them in. A record without an ``occurred_at`` (a withdrawal notice,
one that cannot be opened) keeps its place in its partition and goes first among its
millisecond's. Only a batch is ordered so: a record written later that comes in the next
batch is later. (Ordering more of a batch by ``occurred_at`` would make arrival order hang
on where a poll happened to end, and could not be kept across batches anyway.)

Each commit carries, as its metadata, the time it was made (``{"at": seconds}``), and while
the step has read everything it commits its position again at least once a minute: the
desk reads the group's offsets to tell how current its flags are (:mod:`._flags_fresh`),
and a commit older than that says the service is not reading. "Read everything" is asked
of Kafka, not taken from an empty poll: aiokafka answers a poll with nothing, without
raising, while its fetches fail and back off (a partition's leader unavailable), and the
first poll after a start is often empty. So the position is committed again only when, for
every partition assigned, a fetch has answered within the last :data:`ANSWERED` seconds and
the position has reached the end that fetch gave (its last stable offset: nothing after it
can be read yet). This says nothing of the child and household steps after this one:
their lag is not in these commits.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from broker.config import KafkaSettings
from broker.desk._flags_counts import FlagCounts
from broker.kafka import KafkaClients, stop_bounded, translated
from broker.topics import deliver, desk_flags_reader

__all__ = ["DeliveryReader", "Opened", "arrival_order"]

_POLL_MS: Final = 1000
_MAX_RECORDS: Final = 500
#: While nothing new comes, the position is committed again this often (seconds).
IDLE_COMMIT: Final = 60.0
#: A partition's end, as a fetch gave it, is trusted for this long (seconds): an older one
#: may be from before Kafka stopped answering. A healthy idle consumer fetches every
#: ``fetch_max_wait_ms`` (200 ms).
ANSWERED: Final = 10.0


class Opened(NamedTuple):
    """One delivery record opened: its ``occurred_at`` (µs since the epoch; None if it has
    none), and what sends it on, returning the acknowledgements of what it sent."""

    occurred: int | None
    send: Callable[[], Awaitable[list[Awaitable[Any]]]]


#: Opens one delivery record (value, headers).
Open = Callable[[bytes | None, Any], Opened]


def arrival_order(partitions: Iterable[Sequence[tuple[int, Opened]]]) -> Iterator[Opened]:
    """The batch's opened records, each partition's given as (write time in ms, opened) in
    its own order, in arrival order (module docstring): a stable merge, so ties left after
    ``occurred_at`` fall to the partitions' order."""

    def key(item: tuple[int, Opened]) -> tuple[int, int]:
        written, opened = item
        return written, -1 if opened.occurred is None else opened.occurred

    for _, opened in heapq.merge(*partitions, key=key):
        yield opened


class DeliveryReader:
    """Reads ``accord.deliver.<party>`` at least once, in order per partition, until cancelled."""

    def __init__(
        self, kafka: KafkaSettings, party: str, open_record: Open, *,
        max_records: int = _MAX_RECORDS, counts: FlagCounts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.kafka = kafka
        self.party = party
        self.open_record = open_record
        self.counts = counts
        self._clock = clock
        self._committed_at = 0.0
        self.max_records = max_records

    async def run(self) -> None:
        group = desk_flags_reader(self.party)  # under the party's own prefix
        consumer = KafkaClients(self.kafka).consumer(
            deliver(self.party),
            client_id=group,
            group=group,
            fetch_max_wait_ms=200,
        )
        what = f"the flag service reading {deliver(self.party)}"
        async with translated(what):
            await consumer.start()
        try:
            while True:
                async with translated(what):
                    batch = await consumer.getmany(
                        timeout_ms=_POLL_MS, max_records=self.max_records
                    )
                if not batch:
                    await self._idle(consumer, what)
                    continue
                pending: list[Awaitable[Any]] = []
                # All opened first: a tie in write time is broken by what is inside.
                opened = [
                    [(int(r.timestamp), self.open_record(r.value, r.headers)) for r in records]
                    for records in batch.values()
                ]
                for record in arrival_order(opened):
                    pending.extend(await record.send())
                async with translated(what):
                    for acknowledged in pending:
                        await acknowledged
                    # (offset, metadata): aiokafka's form; the protocol names offsets only.
                    stamped: dict[Any, Any] = {
                        tp: (rs[-1].offset + 1, self._stamp()) for tp, rs in batch.items()
                    }
                    await consumer.commit(stamped)
                self._progressed()
        finally:
            # Every batch's offsets were committed above, once sent: its stop commits none.
            await stop_bounded(consumer)

    def _stamp(self) -> str:
        return json.dumps({"at": round(self._clock(), 3)})

    def _progressed(self) -> None:
        self._committed_at = self._clock()
        if self.counts is not None:
            self.counts.progress = self._committed_at

    async def _idle(self, consumer: Any, what: str) -> None:
        """Nothing came: if everything has been read (module docstring), the position is
        committed again, now and then, to say so (past a trailing transaction marker, too,
        where the consumer has stepped over it)."""
        if self._clock() - self._committed_at < IDLE_COMMIT:
            return
        async with translated(what):
            assigned = list(consumer.assignment())
            ends = [await self._at_end(consumer, tp) for tp in assigned]
            if not assigned or any(at is None for at in ends):
                return  # not known to be current: no stamp, and the desk's warning comes
            stamp = self._stamp()
            await consumer.commit({tp: (at, stamp) for tp, at in zip(assigned, ends, strict=True)})
        self._progressed()

    async def _at_end(self, consumer: Any, tp: Any) -> int | None:
        """The partition's position if a fetch answered lately and it has reached the end
        that fetch gave; None otherwise."""
        end = consumer.last_stable_offset(tp)
        if end is None or end < 0:  # -1: a broker that gives none (read_uncommitted)
            end = consumer.highwater(tp)
        answered = consumer.last_poll_timestamp(tp)  # ms, wall clock (aiokafka's)
        if end is None or answered is None or self._clock() - answered / 1000 > ANSWERED:
            return None
        position = int(await consumer.position(tp))
        return position if position >= end else None
