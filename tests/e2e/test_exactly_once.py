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
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier, verify_chain
from broker.config import KafkaSettings, Settings
from broker.devkafka import EmbeddedKafka
from broker.envelope import InMemoryReplayGuard, Opener
from broker.events import parse_event
from broker.events._synthetic import SyntheticFamilies
from broker.pipeline import prepare_topics
from broker.policy import Policy, load_bundle
from broker.sdk import Delivery, Publisher
from broker.topics import AUDIT, QUARANTINE, deliver
from tests.e2e.worker_proc import WorkerProcess, keystore_for, read_all

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
EVENTS = 240
KILLS = 3


def _incidents(n: int) -> list[dict[str, Any]]:
    fam = SyntheticFamilies(seed=99)
    events = []
    for i in range(n):
        family, postcode = fam.faker.last_name(), fam.postcode(("DY4", "WS10"))
        child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
        parent = fam.subject("parent", family_name=family, postcode=postcode)
        events.append(fam.event("police.domestic_incident", "wmp", subjects=[child, parent],
                                need_level=2 + i % 3))  # fmt: skip
    return events


def _predicted(
    policy: Policy, events: list[dict[str, Any]]
) -> tuple[dict[str, Counter[str]], Counter[tuple[str, str]]]:
    """What the engine says each event produces (these decisions do not depend on the hour)."""
    now = datetime.now(UTC)
    expected: dict[str, Counter[str]] = {}
    candidates: Counter[tuple[str, str]] = Counter()
    for event in events:
        for d in policy.decide(parse_event(event, now=now), [], at=now):
            candidates[(event["event_id"], d.recipient)] += 1
            if d.shares:
                expected.setdefault(d.recipient, Counter())[event["event_id"]] += 1
    return expected, candidates


async def test_sigkilled_worker_delivers_every_event_exactly_once(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy = load_bundle(POLICIES)
    keys = keystore_for(policy, tmp_path / "keys")
    await prepare_topics(
        Settings(home=tmp_path, kafka=KafkaSettings(bootstrap=bootstrap, partitions=3)), policy
    )
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    args = ("--instance", "w1", "--checkpoint-every", "25")
    events = _incidents(EVENTS)
    worker.start(*args)

    async def publish() -> None:
        async with Publisher("wmp", keys, bootstrap) as pub:
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
        for _ in range(240):  # up to ~2 minutes to drain after the last restart
            audit = [
                AuditRecord.model_validate_json(m.value) for m in await read_all(bootstrap, AUDIT)
            ]
            received = {r.event_id for r in audit if r.kind is AuditKind.RECEIVED}
            if len(received) >= EVENTS:
                break
            assert worker.alive(), worker.tail()
            await asyncio.sleep(0.5)
        assert len(received) == EVENTS, worker.tail()
    finally:
        publisher.cancel()
        worker.stop()

    expected, candidates = _predicted(policy, events)
    assert expected, "the scenario must share with someone"

    recipients = [p for p, party in policy.bundle.parties.items() if party.kind != "agency"]
    for recipient in recipients:
        opener = Opener(recipient, keys, replay_guard=InMemoryReplayGuard())
        got: Counter[str] = Counter()
        for m in await read_all(bootstrap, deliver(recipient)):
            delivery = Delivery.model_validate_json(
                opener.open_kafka(m.value, m.headers, topic=deliver(recipient)).payload
            )
            got[delivery.event_id] += 1
        assert got == expected.get(recipient, Counter()), recipient

    audit = [AuditRecord.model_validate_json(m.value) for m in await read_all(bootstrap, AUDIT)]
    decided = Counter((r.event_id, r.party) for r in audit if r.kind is AuditKind.DECIDED)
    assert decided == candidates
    assert await read_all(bootstrap, QUARANTINE) == []
    report = verify_chain(audit, KeystoreAuditVerifier(keys))
    assert report.chain == "worker:w1"
    assert report.last_checkpoint_seq is not None
