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
record is opened and sent on re-keyed (the partitions' records interleaved by the time the
worker wrote them), every send is acknowledged by Kafka, and only then are the batch's
offsets committed. A crash repeats records after the last commit and never skips one; the flag
step downstream ignores a record it has already seen. The re-keyed topics are faust's own
(written without transactions) and the agents and tables after them stay faust's.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from typing import Any, Final

from broker.config import KafkaSettings
from broker.kafka import KafkaClients, stop_quietly, translated
from broker.topics import deliver, desk_flags_reader

__all__ = ["DeliveryReader"]

#: One delivery record (value, headers) handled: the acknowledgements of what it sent on.
Handle = Callable[[bytes | None, Any], Awaitable[list[Awaitable[Any]]]]
_POLL_MS: Final = 1000
_MAX_RECORDS: Final = 500


def _written(record: Any) -> int:
    return int(record.timestamp)


class DeliveryReader:
    """Reads ``accord.deliver.<party>`` at least once, in order per partition, until cancelled."""

    def __init__(
        self, kafka: KafkaSettings, party: str, handle: Handle, *, max_records: int = _MAX_RECORDS
    ) -> None:
        self.kafka = kafka
        self.party = party
        self.handle = handle
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
                    continue
                pending: list[Awaitable[Any]] = []
                # The partitions' records interleaved by when the worker wrote them (each
                # partition's in its own order): a child's records, spread over partitions,
                # reach the windows close to the order they happened, as they would live.
                for record in heapq.merge(*batch.values(), key=_written):
                    pending.extend(await self.handle(record.value, record.headers))
                async with translated(what):
                    for acknowledged in pending:
                        await acknowledged
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
        finally:
            await stop_quietly(consumer)
