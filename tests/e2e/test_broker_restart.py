"""A Kafka broker restart mid-stream loses and duplicates nothing.

The worker (a real subprocess) is processing a stream when the broker stops and comes back.
The worker is crash-only: if it cannot commit it exits, and — as a supervisor would — the test
starts it again. Afterwards every event has reached each permitted recipient exactly once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from broker.sdk import Publisher
from tests.e2e.worker_proc import (
    POLICIES,
    WorkerProcess,
    assert_exactly_once,
    incidents,
    prepared,
    received_ids,
)
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow


async def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    events = incidents(300)
    worker.start()
    restarts = 0
    try:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events[:200])
        # Stop at once: the worker is still working through those 200.
        await asyncio.to_thread(isolated_kafka.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(isolated_kafka.start)
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events[200:])
        received: set[str | None] = set()
        for _ in tries_within(480):
            if not worker.alive():  # crash-only: the supervisor's job
                restarts += 1
                worker.start()
            received = await received_ids(bootstrap)
            if len(received) >= len(events):
                break
            await asyncio.sleep(0.5)
        assert len(received) == len(events), worker.tail()
    finally:
        worker.stop()

    await assert_exactly_once(bootstrap, policy, keys, events)
    print(f"worker restarts needed after the broker restart: {restarts}")  # noqa: T201  # reported in -s runs
