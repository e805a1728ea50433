"""A sender over its budget is slowed by pausing its topic: others flow, nothing is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from broker._canonical import canonical_json
from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.envelope import Sealer
from broker.pipeline import WorkerOptions
from broker.synthetic import SyntheticFamilies
from broker.topics import SCHEMA_EVENT, ingress
from tests.e2e.worker_proc import project_broker, read_audit, received_ids, worker_in_process
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"


async def test_a_sender_over_its_budget_is_slowed_while_others_flow_and_nothing_is_lost(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    """wmp floods 200 events against a budget of 20/s; swbh's 10, sent after, are not
    held behind them, and every one of wmp's is still processed, once."""
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    fam = SyntheticFamilies(seed=77)
    floods = [fam.event(sender="wmp") for _ in range(200)]
    others = [fam.event("health.ae_attendance", "swbh") for _ in range(10)]
    producer = clients(bootstrap).producer("test-budget")
    await producer.start()
    try:
        for sender, events in (("wmp", floods), ("swbh", others)):
            sealer = Sealer(sender, keys)
            for e in events:
                s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient="worker",
                                schema=SCHEMA_EVENT, topic=ingress(sender))  # fmt: skip
                await producer.send(
                    ingress(sender), s.value, headers=list(s.headers), key=e["event_id"].encode()
                )  # as the SDK keys it
        await producer.flush()
    finally:
        await producer.stop()

    flood_ids = {e["event_id"] for e in floods}
    other_ids = {e["event_id"] for e in others}
    options = WorkerOptions(POLICIES, sender_rate=20, sender_burst=20)
    async with worker_in_process(bootstrap, tmp_path, keys, options) as (task, registry):
        received: set[str | None] = set()
        for _ in tries_within(210):
            received = await received_ids(bootstrap)
            if other_ids <= received:
                break
            await asyncio.sleep(0.25)
        assert other_ids <= received
        assert not flood_ids <= received, "the flood was not slowed"
        for _ in tries_within(480):
            received = await received_ids(bootstrap)
            if flood_ids <= received:
                break
            assert not task.done(), "the worker stopped"
            await asyncio.sleep(0.5)

    audit = await read_audit(bootstrap)
    counted = Counter(r.event_id for r in audit if r.kind is AuditKind.RECEIVED)
    assert counted == Counter(flood_ids | other_ids)  # all of them, each once
    assert registry.get_sample_value("accord_sender_throttled_total", {"sender": "wmp"})
    assert not registry.get_sample_value("accord_sender_throttled_total", {"sender": "swbh"})
