"""The loop goes round, and beats /livez's heartbeat, while a fetch does not return.

During a group join (a worker restarted after a SIGKILL waits out the old member's
session) aiokafka's fetch does not return for seconds: a loop that went round only when it
did reported ``main loop stalled`` and could be killed by its liveness probe mid-join.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from broker.kafka import TopicPartition
from broker.pipeline import _loop as loop_module
from broker.pipeline._processor import Processor
from tests.unit.pipeline.test_loop import _Consumer, _loop, _Producer


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
