"""Exactly once under SIGKILL: the worker is killed again and again while agencies publish.

The worker runs as a real subprocess (``accord worker``) on a broker of its own. After it has
been SIGKILLed several times mid-stream and restarted, every event must have reached each
permitted recipient exactly once, nobody else, with exactly one ``decided`` audit record per
(event, candidate), and the audit chain — resumed from the state changelog after every
restart — must verify.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from broker.pipeline._loop import GROUP
from broker.sdk import Publisher
from broker.topics import QUARANTINE, ingress
from tests.e2e.worker_proc import (
    POLICIES,
    WorkerProcess,
    assert_exactly_once,
    group_lag,
    incidents,
    prepared,
    read_all,
    received_ids,
    verify_chains,
)
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

EVENTS = 240
KILLS = 3


async def test_sigkilled_worker_delivers_every_event_exactly_once(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    args = ("--instance", "w1", "--checkpoint-every", "25")
    events = incidents(EVENTS)
    worker.start(*args)

    async def publish() -> None:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            for event in events:
                await pub.publish(event)
                await asyncio.sleep(0.04)

    rng = random.Random(5)  # noqa: S311  # test timing, not cryptography
    publisher = asyncio.create_task(publish())
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            worker.kill()
            worker.start(*args)
        await publisher
        received: set[str | None] = set()
        for _ in tries_within(480):  # 8 minutes to drain after the last restart
            received = await received_ids(bootstrap)
            if len(received) >= EVENTS:
                break
            assert worker.alive(), worker.tail()
            await asyncio.sleep(0.5)
        assert len(received) == EVENTS, worker.tail()
    finally:
        publisher.cancel()
        worker.stop()

    audit = await assert_exactly_once(bootstrap, policy, keys, events)
    assert await read_all(bootstrap, QUARANTINE) == []
    reports = verify_chains(audit, keys)
    assert {f"worker:{ingress('wmp')}-{p}" for p in range(3)} <= set(reports)
    # The worker resumes from its changelog, but tools read the group's offsets: after a clean
    # stop they are current, never ahead of a committed transaction.
    assert set((await group_lag(bootstrap, GROUP, ingress("wmp"))).values()) == {0}
