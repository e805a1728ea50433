"""The flag service's reader, cancelled at the service's stop, ends without waiting for its
consumer to finish closing (a close over TLS can wait 30 s for a Kafka broker that never
answers its close_notify: ``broker.kafka.stop_bounded``; a pod's stop has 30 s in all). The
fake consumer's stop waits that way, for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.config import KafkaSettings
from broker.desk import _flags_source
from broker.desk._flags_source import DeliveryReader, Opened
from broker.kafka import _errors


class _SlowToClose:
    """A consumer with nothing to read; its stop never returns."""

    def __init__(self) -> None:
        self.polled = asyncio.Event()
        self.stop_begun = asyncio.Event()

    async def start(self) -> None:
        pass

    async def getmany(self, **options: Any) -> dict[Any, Any]:  # noqa: ARG002
        self.polled.set()
        await asyncio.sleep(0.01)
        return {}

    async def stop(self) -> None:
        self.stop_begun.set()
        await asyncio.Event().wait()


def _never_opened(value: bytes | None, headers: Any) -> Opened:
    raise AssertionError("nothing is delivered")


async def test_the_reader_cancelled_ends_while_its_consumer_is_still_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)
    consumer = _SlowToClose()

    class _Clients:
        def __init__(self, settings: KafkaSettings) -> None:
            del settings

        def consumer(self, *topics: str, **options: Any) -> _SlowToClose:  # noqa: ARG002
            return consumer

    monkeypatch.setattr(_flags_source, "KafkaClients", _Clients)
    # The clock says a commit was just made: an idle poll commits nothing.
    reader = DeliveryReader(KafkaSettings(), "sandwell-coord", _never_opened, clock=lambda: 0.0)
    running = asyncio.create_task(reader.run())
    await asyncio.wait_for(consumer.polled.wait(), timeout=2)

    running.cancel()
    done, _ = await asyncio.wait([running], timeout=2)

    assert done == {running}
    assert running.cancelled()
    assert consumer.stop_begun.is_set()  # begun, and left to finish in the background
