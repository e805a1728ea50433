"""Which consent end offsets a batch's contact events must wait for, in as few round trips as
the facts allow.

A consent recorded (and published) before an event must govern it, whichever worker holds
either. The loop decides a batch's events only once its consent table holds every consent
record below a set of ``accord.consent`` end offsets that were read *after each of the
batch's events was appended*: then every consent appended before an event is below them.
There are two ways to know that a read of the ends came after an event's append:

(b) the request was sent after the fetch that returned the event returned: the event was on
    the broker before the fetch answered. One round trip per batch, taken after its fetch;
    the loop always waited for it, before this module.
(a) an earlier answer, R(i), put the end of the event's own partition above the event's
    offset, so the broker had appended the event when it answered; and R(i+1) was *sent
    after R(i) arrived*. R(i+1)'s consent ends were then read after the event's append, on
    whichever broker leads each partition.

So every request asks for the consent partitions' ends and those of the ingress partitions
the batch came from, one request at a time (which makes consecutive answers such a pair). A
batch of new events sends one after its fetch and waits for it, as it always did. A batch
whose events were all appended before the older of the two newest answers (any backlog: a
worker catching up, or draining after an outage) is decided at once, and sends the next
request without waiting for it, so that the backlog's next batch finds a fresher pair. One
request per batch either way: no more than before.

End offsets here are the group consumer's, read_committed: the last stable offset, which is
never above what the broker has appended. An answer that lacks a consent partition (one
added since) covers nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from broker.kafka import Consumer, TopicPartition, translated

__all__ = ["ConsentFence", "end_offsets"]

Ends = dict[TopicPartition, int]
#: One ListOffsets round trip: the end offsets of the partitions given.
Ask = Callable[[list[TopicPartition]], Awaitable[Ends]]


@dataclass(frozen=True, slots=True)
class _Answer:
    sent_after: int  # how many fetches had returned when the request was sent
    ends: Ends


class ConsentFence:
    """Answers, for a fetched batch, the consent ends that cover its events (see above)."""

    def __init__(self, ask: Ask) -> None:
        self._ask = ask
        self._answers: deque[_Answer] = deque(maxlen=2)
        self._asking: asyncio.Task[None] | None = None
        #: Fetches returned so far; the loop counts one as each fetch returns.
        self.fetches = 0

    async def covering(
        self, consent: list[TopicPartition], batch: Mapping[TopicPartition, int], fetch: int
    ) -> Ends:
        """Consent ends read after every event of ``batch`` (partition → its last offset)
        was appended; the batch came from fetch number ``fetch``.

        Requests ask about the batch's own ingress partitions, not every one the worker
        holds: a backlog's next batch comes mostly from the same ones (a partition missing
        from the older answer leaves its events to (b)), and a worker holding hundreds of
        partitions would otherwise ask for all of them with every batch."""
        while True:
            found = self._sent_after(consent, fetch)
            if found is None and (found := self._by_pair(consent, batch)) is not None:
                self._start(consent, batch)  # for the backlog's next batch, not waited for
            if found is not None:
                return found
            self._start(consent, batch)
            asking = self._asking
            assert asking is not None  # noqa: S101  # _start left one in flight
            await asyncio.shield(asking)  # a cancelled wait leaves the request to finish

    async def close(self) -> None:
        """Cancel the request in flight, if any, and wait for it to end."""
        if self._asking is not None:
            self._asking.cancel()
            await asyncio.gather(self._asking, return_exceptions=True)
            self._asking = None

    def _sent_after(self, consent: list[TopicPartition], fetch: int) -> Ends | None:
        """(b): the consent ends of an answer to a request sent after fetch ``fetch``."""
        for answer in reversed(self._answers):
            if answer.sent_after >= fetch:
                found = _consent_ends(answer, consent)
                if found is not None:
                    return found
        return None

    def _by_pair(
        self, consent: list[TopicPartition], batch: Mapping[TopicPartition, int]
    ) -> Ends | None:
        """(a): the newer answer's consent ends, if the older one's ingress ends are above
        every event of ``batch`` (consecutive answers: the newer was sent after the older
        came)."""
        if len(self._answers) < 2:
            return None
        first, second = self._answers
        if all(o < first.ends.get(tp, -1) for tp, o in batch.items()):
            return _consent_ends(second, consent)
        return None

    def _start(self, consent: list[TopicPartition], batch: Mapping[TopicPartition, int]) -> None:
        """Send the next request unless one is in flight; raise what the last one raised."""
        if self._asking is not None:
            if not self._asking.done():
                return
            asked, self._asking = self._asking, None
            asked.result()  # a failed request fails the loop, as a failed wait always did
        wanted = sorted({*consent, *batch})
        self._asking = asyncio.create_task(
            self._request(wanted, self.fetches), name="accord-consent-ends"
        )

    async def _request(self, partitions: list[TopicPartition], sent_after: int) -> None:
        ends = await self._ask(partitions)
        # Appended before the task ends, and the next request starts only after it has ended:
        # consecutive answers are always a pair as (a) needs.
        self._answers.append(_Answer(sent_after, dict(ends)))


async def end_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> Ends:
    """One :data:`Ask`: ``partitions``' end offsets as ``consumer`` reads (read_committed)."""
    async with translated("reading accord.consent's and ingress end offsets"):
        got = await consumer.end_offsets(partitions)
    return {TopicPartition(tp.topic, tp.partition): int(o) for tp, o in got.items()}


def _consent_ends(answer: _Answer, consent: list[TopicPartition]) -> Ends | None:
    if not all(tp in answer.ends for tp in consent):
        return None  # a consent partition added since: this answer says nothing of it
    return {tp: answer.ends[tp] for tp in consent}
