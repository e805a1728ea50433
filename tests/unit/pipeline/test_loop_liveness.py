"""The loop goes round, and beats /livez's heartbeat, while a fetch does not return.

During a group join (a worker restarted after a SIGKILL waits out the old member's
session) aiokafka's fetch does not return for seconds: a loop that went round only when it
did reported ``main loop stalled`` and could be killed by its liveness probe mid-join. So
could one whose batch of contact events waits for consent (another worker's progress, a
SIGKILLed one's for its whole session; its own consent partition's fetch, mid-join): that
wait beats the heartbeat and refreshes the lag gauge as the rounds do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline import _loop as loop_module
from broker.pipeline._lag import Lag
from broker.pipeline._processor import Processor
from broker.topics import CONSENT
from tests.unit.pipeline.test_consent_wait_bounded import _Frozen
from tests.unit.pipeline.test_loop import _Consumer, _loop, _messages, _Producer

C = TopicPartition(CONSENT, 0)


class _Joining(_Consumer):
    """A fetch that never returns, as aiokafka's during a group join; counts fetches."""

    def __init__(self) -> None:
        super().__init__([], on_idle=lambda: None, assigned=True)
        self.fetches = 0

    async def getmany(
        self,
        *partitions: TopicPartition,  # noqa: ARG002  # aiokafka's signature
        timeout_ms: int,  # noqa: ARG002  # aiokafka's signature
        max_records: int,  # noqa: ARG002  # aiokafka's signature
    ) -> dict[TopicPartition, list[Any]]:
        self.fetches += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class _Beats:
    def __init__(self) -> None:
        self.count = 0

    def beat(self) -> None:
        self.count += 1


async def test_the_heartbeat_is_beaten_while_a_fetch_never_returns_and_no_second_fetch_starts(
    make_processor: Callable[..., Processor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "ROUND_S", 0.05)
    consumer = _Joining()
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    beats = _Beats()
    loop.heartbeat = beats  # type: ignore[assignment]  # counts beats
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.6)  # the first commit (the policy load) takes 0.2 s
    rounds = beats.count
    await asyncio.sleep(0.3)
    assert beats.count > rounds  # still going round, with the fetch still pending
    assert consumer.fetches == 1  # the pending fetch is reused, never doubled
    stop.set()
    await asyncio.wait_for(running, 5)
    await loop.stop()


async def test_the_heartbeat_is_beaten_and_the_lag_refreshed_while_events_wait_for_consent(
    make_processor: Callable[..., Processor],
    pipeline_keys: FileKeyStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The consent fence's end offsets never answered: the loop's round does not come back
    for as long, yet /livez hears from it and the gauge goes on being refreshed."""
    monkeypatch.setattr(loop_module, "ROUND_S", 0.05)
    refreshes: list[float] = []

    async def measure(self: Lag) -> None:  # Lag._measure, replaced
        refreshes.append(asyncio.get_running_loop().time())

    monkeypatch.setattr(Lag, "_measure", measure)
    consumer = _Frozen([_messages(pipeline_keys, 0, 2)], on_idle=lambda: None, assigned=True)
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    loop._lag._every = 0.05
    beats = _Beats()
    loop.heartbeat = beats  # type: ignore[assignment]  # counts beats
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(consumer.asked.wait(), timeout=5)
    before, measured = beats.count, len(refreshes)
    await asyncio.sleep(1.2)
    assert beats.count >= before + 2  # at least every half second
    assert len(refreshes) >= measured + 2
    stop.set()
    await asyncio.wait_for(running, 5)
    await loop.stop()


class _ConsentJoining(_Consumer):
    """Consent partition 0 is this worker's, 5 records to file; its fetch never returns (a
    join under way)."""

    def __init__(self, batches: list[list[Any]]) -> None:
        super().__init__(batches, on_idle=lambda: None, assigned=True)
        self.assigned.add(C)
        self.consent_fetch = asyncio.Event()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        if partitions == (C,):
            self.consent_fetch.set()
            await asyncio.Event().wait()
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 5 if tp == C else 0 for tp in partitions}


async def test_the_heartbeat_is_beaten_while_the_consent_wait_fetches_its_own_partition(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    consumer = _ConsentJoining([_messages(pipeline_keys, 0, 2)])
    loop, _, _ = await _loop(make_processor, consumer, _Producer())
    await loop.on_partitions_assigned([C])
    await loop.opened()
    beats = _Beats()
    loop.heartbeat = beats  # type: ignore[assignment]  # counts beats
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop))
    await asyncio.wait_for(consumer.consent_fetch.wait(), timeout=5)
    before = beats.count
    await asyncio.sleep(1.2)
    assert beats.count >= before + 2
    stop.set()
    await asyncio.wait_for(running, 5)  # and a stop ends the fetch's wait
    await loop.stop()
