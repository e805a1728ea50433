"""A Kafka broker restart mid-stream loses and duplicates nothing.

The worker (a real subprocess) is processing a stream when the broker stops and comes back.
The worker is crash-only: if it cannot commit it exits, and — as a supervisor would — the test
starts it again. Afterwards every event has reached each permitted recipient exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from broker.audit import AuditKind
from broker.config import KafkaSettings, Settings
from broker.devkafka import EmbeddedKafka
from broker.envelope import InMemoryReplayGuard, Opener
from broker.pipeline import prepare_topics
from broker.policy import load_bundle
from broker.sdk import Delivery, Publisher
from broker.topics import deliver
from tests.e2e.test_exactly_once import _incidents, _predicted
from tests.e2e.worker_proc import WorkerProcess, keystore_for, read_all, read_audit

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"


async def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy = load_bundle(POLICIES)
    keys = keystore_for(policy, tmp_path / "keys")
    await prepare_topics(
        Settings(home=tmp_path, kafka=KafkaSettings(bootstrap=bootstrap, partitions=3)), policy
    )
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    events = _incidents(300)
    worker.start()
    restarts = 0
    try:
        async with Publisher("wmp", keys, bootstrap) as pub:
            await pub.publish_many(events[:200])
        # Stop at once: the worker is still working through those 200.
        await asyncio.to_thread(isolated_kafka.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(isolated_kafka.start)
        async with Publisher("wmp", keys, bootstrap) as pub:
            await pub.publish_many(events[200:])
        received: set[str | None] = set()
        for _ in range(240):
            if not worker.alive():  # crash-only: the supervisor's job
                restarts += 1
                worker.start()
            audit = await read_audit(bootstrap)
            received = {r.event_id for r in audit if r.kind is AuditKind.RECEIVED}
            if len(received) >= len(events):
                break
            await asyncio.sleep(0.5)
        assert len(received) == len(events), worker.tail()
    finally:
        worker.stop()

    expected, candidates = _predicted(policy, events)
    for recipient, party in policy.bundle.parties.items():
        if party.kind == "agency":
            continue
        opener = Opener(recipient, keys, replay_guard=InMemoryReplayGuard())
        got: Counter[str] = Counter()
        for m in await read_all(bootstrap, deliver(recipient)):
            payload = opener.open_kafka(m.value, m.headers, topic=deliver(recipient)).payload
            got[Delivery.model_validate_json(payload).event_id] += 1
        assert got == expected.get(recipient, Counter()), recipient
    audit = await read_audit(bootstrap)
    assert (
        Counter((r.event_id, r.party) for r in audit if r.kind is AuditKind.DECIDED) == candidates
    )
    print(f"worker restarts needed after the broker restart: {restarts}")  # noqa: T201  # reported in -s runs
