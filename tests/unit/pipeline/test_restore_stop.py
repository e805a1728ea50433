"""The worker's start does not wait for the restore's consumer to finish closing.

A consumer stopped with a fetch just sent can wait 30 s for its TLS close: a Kafka broker that
reads the request and the close_notify together never answers the close_notify, and the event
loop gives up on it only after its TLS shutdown timeout; the restore waits only
``broker.kafka.stop_bounded``'s bound (``_errors.CLOSE_WAIT_S``). The fake consumer's stop waits
the same way, for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.kafka import TopicPartition, _errors
from broker.keys import FileKeyStore
from broker.pipeline._restore import restore_state
from broker.pipeline._state import state_mac_key
from broker.topics import STATE


class _SlowToClose:
    """An empty changelog, read to its end; its stop never returns."""

    def __init__(self) -> None:
        self.tp = TopicPartition(STATE, 0)
        self.stop_begun = asyncio.Event()

    async def start(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {STATE}

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        pass

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def position(self, tp: TopicPartition) -> int:  # noqa: ARG002  # the Consumer's
        return 0

    async def stop(self) -> None:
        self.stop_begun.set()
        await asyncio.Event().wait()


class _Kafka:
    def __init__(self, consumer: _SlowToClose) -> None:
        self._consumer = consumer

    def consumer(self, *topics: str, **options: Any) -> _SlowToClose:  # noqa: ARG002
        return self._consumer


async def test_the_restore_returns_while_its_consumer_is_still_closing(
    pipeline_keys: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.2)
    consumer = _SlowToClose()
    loop = asyncio.get_running_loop()
    began = loop.time()

    reader, ends = await asyncio.wait_for(
        restore_state(_Kafka(consumer), pipeline_keys, state_mac_key(b"k" * 32)),  # type: ignore[arg-type]
        timeout=5,
    )

    assert loop.time() - began < 2
    assert ends == {consumer.tp: 0}
    assert reader.report.refused == {}
    assert consumer.stop_begun.is_set()  # begun, and left to finish in the background
