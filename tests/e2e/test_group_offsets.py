"""The group's offsets, which tools read for lag, end current even when the worker that
processed the records never reported them (killed first): its successor reports where the
changelog says it resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.devkafka import EmbeddedKafka
from broker.kafka import TopicPartition
from broker.pipeline import WorkerOptions
from broker.pipeline._loop import GROUP
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.topics import ingress
from tests.e2e.worker_proc import group_lag, project_broker, received_ids, worker_in_process
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"


async def _rewind_group(bootstrap: str, lag: dict[int, int]) -> None:
    """The group's offsets set back to each partition's beginning, as a worker killed before
    its first report leaves them."""
    topic = ingress("wmp")
    consumer = clients(bootstrap).consumer(client_id="test-rewind", group=GROUP)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in lag]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def test_a_resumed_worker_reports_the_offsets_an_earlier_one_committed(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    families = SyntheticFamilies(seed=14)
    events = [families.event(sender="wmp") for _ in range(12)]
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)):
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            for event in events:
                await pub.publish(event)
        for _ in tries_within(240):
            if len(await received_ids(bootstrap)) >= len(events):
                break
            await asyncio.sleep(0.3)
    lag = await group_lag(bootstrap, GROUP, ingress("wmp"))
    assert set(lag.values()) == {0}, lag  # a clean stop reports what it processed

    await _rewind_group(bootstrap, lag)
    behind = await group_lag(bootstrap, GROUP, ingress("wmp"))
    assert sum(behind.values()) == len(events), behind

    # Nothing new arrives: the successor processes no record, yet reports its positions.
    with capture_logs() as logs:
        async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)):
            for _ in tries_within(120):
                held = [e["held"] for e in logs if e["event"] == "partitions_assigned"]
                if held and held[-1] >= len(lag):
                    break
                await asyncio.sleep(0.2)
    assert set((await group_lag(bootstrap, GROUP, ingress("wmp"))).values()) == {0}
