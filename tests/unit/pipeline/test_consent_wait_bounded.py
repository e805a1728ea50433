"""The consent wait's requests to Kafka, over the fakes of test_loop, when Kafka does not
answer them: the end offsets a batch of contact events waits for, and the changelog's tail
catching up. A stop ends the wait (the events wait for the next run), and so does a commit
that fails meanwhile; before, the loop waited for Kafka's answer, for ever if it was frozen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from broker.errors import TransportError
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from tests.unit.pipeline.test_loop import _Consumer, _Handover, _loop, _messages, _Producer


class _Frozen(_Consumer):
    """Kafka frozen once the events were fetched: their end offsets are never answered."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # _Consumer's own
        self.asked = asyncio.Event()

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:  # noqa: ARG002  # aiokafka's signature
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


class _Failing(_Producer):
    """Its first commit fails once the events' wait has begun (its sender died)."""

    def __init__(self, asked: asyncio.Event) -> None:
        super().__init__()
        self.asked = asked

    async def commit_transaction(self) -> None:
        await self.asked.wait()
        raise TransportError("committing a batch of accord.ingress.wmp-0: KafkaError")


def _hang(handover: _Handover, asked: asyncio.Event) -> None:
    """The tail never reaches the changelog's end: Kafka frozen after the opening."""

    async def caught_up() -> None:
        asked.set()
        await asyncio.Event().wait()

    handover.caught_up = caught_up  # type: ignore[method-assign]  # the fake's seam


async def test_a_stop_while_the_events_end_offsets_go_unanswered_ends_the_run(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    consumer = _Frozen([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    [task] = loop._tasks.values()
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(consumer.asked.wait(), timeout=5)

    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert task.pending.stamps == []  # the events were not decided: the next run does them
    assert task.position is None


async def test_a_commit_failing_while_the_events_end_offsets_go_unanswered_ends_the_run(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    consumer = _Frozen([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, _, _ = await _loop(make_processor, consumer, _Failing(consumer.asked))

    with pytest.raises(TransportError, match="KafkaError"):
        await asyncio.wait_for(loop.run(asyncio.Event()), timeout=5)


async def test_a_stop_while_the_changelog_tail_never_catches_up_ends_the_run(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Consent partition 0 is another worker's (this one holds only ingress): its filing is
    read from the changelog, up to its end, before the events are decided."""
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, _, handover = await _loop(make_processor, consumer, _Producer())
    [task] = loop._tasks.values()
    asked = asyncio.Event()
    _hang(handover, asked)
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(asked.wait(), timeout=5)

    stop.set()
    await asyncio.wait_for(running, timeout=5)
    assert task.pending.stamps == []


async def test_a_commit_failing_while_the_changelog_tail_never_catches_up_ends_the_run(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    consumer = _Consumer([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    asked = asyncio.Event()
    loop, _, handover = await _loop(make_processor, consumer, _Failing(asked))
    _hang(handover, asked)

    with pytest.raises(TransportError, match="KafkaError"):
        await asyncio.wait_for(loop.run(asyncio.Event()), timeout=5)
