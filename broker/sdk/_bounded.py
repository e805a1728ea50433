"""Sends that finish, or are given up, within a time limit: and a send given up on stays
given up.

aiokafka's own waits are not a limit: an idempotent producer retries a batch whose
partition leader it knows without end, so with Kafka down ``send_and_wait`` waits until
Kafka is back and then writes the record. For an access acknowledgement that is the worst
of both: the page waited for minutes, and the audit log then says the person opened a
record nobody showed them. Here every send has a deadline; past it, or on any failure, the
producer is abandoned (``broker.kafka.abandon``: nothing it holds is sent or retried) and
the next send starts a new one.

With a transactional id each send is a transaction, committed only once Kafka has taken
every record within the deadline. Every reader of the topics a party writes (the worker's
consumer of ingress, consent and access topics) is read_committed, so the records of a
transaction never committed are never seen, even if a request Kafka had received is
written after we gave up; the next producer's start, with the same id, aborts it at once
(else Kafka does, after ``transaction_timeout_ms``). Without one, abandoning the producer
stops every retry, but a request already on the wire may still be written: publish again
under the same event id (the broker takes an event id once).

Sends without a transactional id share one producer, so a send given up on abandons the
records of others under way on it: those fail, though Kafka may have had some already. Any
such send failing once one of its records was in the producer's queue is ``SendUnconfirmed``,
never a plain failure, whatever the error.

The one case a transaction cannot close: the deadline passing while Kafka commits.
aiokafka hands the commit (EndTxn) to its sender task and waits; once the request has left,
abandoning the producer cannot call it back, and the coordinator may complete the commit.
Then, and for a send without a transactional id given up on after its records were handed
over, the caller gets ``SendUnconfirmed`` (a ``TransportError``): it may have been written,
so it must be checked, or sent again under the same event id, never sent afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from broker.errors import SendUnconfirmed, TransportError, UsageError
from broker.kafka import (
    Consumer,
    KafkaClients,
    Producer,
    abandon,
    abandon_consumer,
    connecting,
    left_running,
    stop_in_background,
    stop_quietly,
    translated,
)

__all__ = ["DEFAULT_SEND_TIMEOUT", "STOP_GRACE", "BoundedProducer", "Outgoing", "stop_consumer"]

log = structlog.get_logger("accord.sdk")

#: Seconds an SDK send may take before it is given up (the desk's are shorter:
#: ``DeskSettings.send_timeout_seconds``). Under aiokafka's own request timeout (40 s).
DEFAULT_SEND_TIMEOUT = 30.0
#: Seconds a stop may take past the send timeout, in all: the first half is more time for a
#: clean close, the rest is for abandoning a client Kafka does not let go of.
STOP_GRACE = 5.0


def _left(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def stop_consumer(consumer: Consumer, *, send_timeout: float, client_id: str) -> None:
    """Stop a consumer within ``send_timeout`` + ``STOP_GRACE`` s in all, as
    :meth:`BoundedProducer.stop` stops a producer: past ``send_timeout`` + half the grace
    (Kafka not answering its LeaveGroup, the group coordinator's retries), its stop is
    cancelled and it is abandoned (``broker.kafka.abandon_consumer``, which commits nothing)
    within what is left."""
    deadline = asyncio.get_running_loop().time() + send_timeout + STOP_GRACE
    stopping = stop_in_background(stop_quietly(consumer))  # held: a cancel may not end it
    try:
        done, _ = await asyncio.wait([stopping], timeout=send_timeout + STOP_GRACE / 2)
    except BaseException:
        stopping.cancel()  # this stop was itself cancelled: so is the consumer's
        left_running(stopping, client_id)
        raise
    if done:
        stopping.result()
        return
    stopping.cancel()
    left_running(stopping, client_id)
    # Three waits share what is left: the cancelled stop's, then abandon_consumer's two (its
    # tasks, then its connections), each up to ``within``.
    await asyncio.wait([stopping], timeout=_left(deadline) / 3)
    await abandon_consumer(consumer, within=_left(deadline) / 2)
    log.warning(
        "kafka_consumer_abandoned_at_stop", client_id=client_id,
        waited_seconds=send_timeout + STOP_GRACE / 2,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: sealed already."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class BoundedProducer:
    """One producer for a client; ``send`` sends records together, within ``timeout`` s."""

    def __init__(
        self,
        kafka: KafkaClients,
        client_id: str,
        *,
        timeout: float,
        transactional_id: str | None = None,
    ) -> None:
        if not timeout > 0:
            raise UsageError("a send timeout is a number of seconds above 0")
        self._kafka = kafka
        self._client_id = client_id
        self.timeout = timeout
        self.transactional_id = transactional_id
        self._producer: Producer | None = None
        self._started = False
        # A transactional producer runs one transaction at a time; the wait for it counts
        # against each caller's own deadline. Plain sends overlap (an agency publishing many
        # events at once must not wait a round trip for each): only a new producer's start
        # is one at a time, so that two sends never make two.
        self._lock = asyncio.Lock()
        self._starting = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def _new(self) -> Producer:
        if self.transactional_id is None:
            return self._kafka.producer(self._client_id)
        # Long enough for any send we wait for; short, so that a transaction left open by
        # an abandoned producer (whose id is not used again) holds back read_committed
        # readers of its partitions for seconds, not Kafka's default minute.
        ms = int(max(10.0, 3 * self.timeout) * 1000)
        return self._kafka.transactional_producer(
            self.transactional_id, self._client_id, transaction_timeout_ms=ms
        )

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Start the first producer: a Kafka that cannot be reached is reported now."""
        producer = self._new()
        try:
            async with connecting(self._kafka):
                await producer.start()
        except BaseException:
            await stop_quietly(producer)  # else it is reported unclosed after our error line
            raise
        self._producer, self._started = producer, True

    async def stop(self) -> None:
        """Stop within ``timeout`` + ``STOP_GRACE`` s in all: past ``timeout`` + half the
        grace (Kafka not answering, a send still under way), what the producer holds is
        abandoned, not waited for, within what is left."""
        producer, self._producer, self._started = self._producer, None, False
        deadline = asyncio.get_running_loop().time() + self.timeout + STOP_GRACE
        waited = self.timeout + STOP_GRACE / 2
        try:
            async with asyncio.timeout(waited):
                if producer is not None:
                    await producer.stop()  # a send still under way is delivered first
                if self._closing:
                    await asyncio.gather(*self._closing, return_exceptions=True)
        except TimeoutError:
            # aiokafka's stop waits for every pending batch, and its sender retries one
            # without end while Kafka is away: a SIGTERM must not wait for Kafka's return.
            for task in self._closing:
                task.cancel()
            if producer is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_left(deadline)):
                        await abandon(producer)
            log.warning("kafka_producer_abandoned_at_stop", client_id=self._client_id,
                        waited_seconds=waited)  # fmt: skip

    async def send(self, what: str, records: Sequence[Outgoing]) -> list[Any]:
        """Send ``records`` (one transaction, with a transactional id); their metadata.

        ``TransportError`` if Kafka has not taken them all within the deadline, or failed;
        ``SendUnconfirmed`` (one) if that happened once Kafka may have had them.
        """
        if not self._started:  # the clients say so first, naming themselves
            raise UsageError("the client is not started")
        try:
            # This send's own: set once Kafka may have it (its commit begun; without a
            # transaction, one of its records in the producer's queue). Past that, a send
            # given up on is unconfirmed (and, without a transaction, one failed too). Not
            # the producer's: a caller still waiting for the lock when its deadline passes
            # has handed nothing over.
            handed_over: list[bool] = []
            async with asyncio.timeout(self.timeout):
                if self.transactional_id is None:
                    return await self._send(what, records, handed_over)
                async with self._lock:
                    return await self._send(what, records, handed_over)
        except TimeoutError:
            if handed_over:
                fate = (
                    "it was being committed, and may have been written"
                    if self.transactional_id is not None
                    else "it is not sent again, but Kafka may have received it"
                )
                raise SendUnconfirmed(
                    f"{what}: Kafka did not answer within {self.timeout:g} s; {fate}",
                    # Every record's key is its envelope id: what to send it again under.
                    event_ids=tuple(r.key.decode("ascii") for r in records),
                ) from None
            raise TransportError(
                f"{what}: Kafka did not answer within {self.timeout:g} s; nothing was written"
            ) from None
        except TransportError as exc:
            if not handed_over or self.transactional_id is not None:
                raise  # nothing queued; or a transaction Kafka answered: not committed
            if isinstance(exc, SendUnconfirmed):
                raise
            # Failed once queued: another send's deadline abandoned the producer under it,
            # or Kafka refused a later record of it. What was queued may have been written.
            raise SendUnconfirmed(
                f"{exc}; it is not sent again, but Kafka may have received it",
                event_ids=tuple(r.key.decode("ascii") for r in records),
            ) from exc

    async def _send(
        self, what: str, records: Sequence[Outgoing], handed_over: list[bool]
    ) -> list[Any]:
        producer = await self._current(what)
        try:
            return await self._send_on(producer, what, records, handed_over)
        except BaseException:
            # Past the deadline or failed: nothing it holds is sent later. Sends overlapping
            # on it fail too (each caller hears so); the next send starts a new producer.
            self._abandon(producer)
            raise

    async def _current(self, what: str) -> Producer:
        async with self._starting:
            producer = self._producer
            if producer is None:  # the last one was abandoned
                producer = self._new()
                try:
                    async with connecting(self._kafka, doing=what):
                        await producer.start()
                except BaseException:
                    self._abandon_later(producer)
                    raise
                self._producer = producer
            return producer

    async def _send_on(
        self, producer: Producer, what: str, records: Sequence[Outgoing], handed_over: list[bool]
    ) -> list[Any]:
        transactional = self.transactional_id is not None
        async with translated(what):
            if transactional:
                await producer.begin_transaction()
            futures = []
            for r in records:
                futures.append(await producer.send(r.topic, r.value, key=r.key, headers=r.headers))
                if not transactional and not handed_over:
                    # In the producer's queue: from now on it may reach Kafka.
                    handed_over.append(True)
            metas = list(await asyncio.gather(*futures))
            if transactional:
                # From here the commit cannot be called back (see the module's docstring).
                handed_over.append(True)
                await producer.commit_transaction()
        return metas

    def _abandon(self, producer: Producer) -> None:
        if self._producer is producer:  # not one a send overlapping this one made since
            self._producer = None
            self._abandon_later(producer)

    def _abandon_later(self, producer: Producer) -> None:
        # In the background: a caller past its deadline must not wait for the close too.
        task = asyncio.create_task(abandon(producer), name="accord-abandon-producer")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
