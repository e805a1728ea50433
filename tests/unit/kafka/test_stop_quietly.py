"""``stop_quietly``: a client's failure to stop never hides why we are stopping."""

from __future__ import annotations

import asyncio

import pytest

from broker.errors import TransportError
from broker.kafka import stop_quietly
from broker.pipeline._tasks import close_within


class _AiokafkaLike:
    """Stops as aiokafka's consumer does with Kafka away: its fetcher cancels a pending task
    and awaits it, so ``stop()`` raises a ``CancelledError`` no one asked for."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def stop(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        pending = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        pending.cancel()
        await pending


async def test_a_cancelled_error_from_the_clients_own_stop_does_not_replace_the_error() -> None:
    """The on-call walkthrough's worker died of a Kafka outage with a page of traceback
    ending in CancelledError, the TransportError it was stopping for buried inside."""

    async def stopping_for_an_outage() -> None:
        try:
            raise TransportError("reading accord.consent's end offsets: Kafka did not answer")
        finally:
            await stop_quietly(_AiokafkaLike())

    with pytest.raises(TransportError, match="did not answer"):
        await stopping_for_an_outage()


async def test_a_stop_that_is_itself_cancelled_is_still_cancelled() -> None:
    """Swallowing every CancelledError would make a stop unbounded: close_within's timeout
    cancels a hung stop, and that must still end it."""
    await asyncio.wait_for(close_within(_AiokafkaLike(hang=True)), timeout=10)  # type: ignore[arg-type]  # a fake
    task = asyncio.create_task(stop_quietly(_AiokafkaLike(hang=True)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_request_kafka_never_answered_is_said_in_words_not_the_exceptions_name() -> None:
    from aiokafka.errors import KafkaTimeoutError

    from broker.kafka import translated

    with pytest.raises(TransportError) as got:
        async with translated("reading accord.consent's and ingress end offsets"):
            raise KafkaTimeoutError("Failed to get offsets by times in 65000 ms")
    assert str(got.value) == (
        "reading accord.consent's and ingress end offsets: Kafka did not answer in time"
    )


async def test_a_stop_cut_short_by_aiokafkas_cancellation_still_closes_the_connections() -> None:
    """aiokafka marks the consumer closed before its fetcher's cancellation escapes, so its
    client's connections were left open and a second stop did nothing (review r45b)."""

    class _Connections:
        closed = False

        async def close(self) -> None:
            self.closed = True

    class _Consumer(_AiokafkaLike):
        _fetcher = None
        _coordinator = None

        def __init__(self) -> None:
            super().__init__()
            self._client = _Connections()

    consumer = _Consumer()
    await stop_quietly(consumer)
    assert consumer._client.closed
