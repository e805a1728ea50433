"""Workers as a consumer group, on the real broker: two ``accord worker`` processes share the
inputs; SIGKILLing either, again and again, hands its partitions to the other and loses or
doubles nothing; and a consent published before an event governs it whichever worker holds
the consent record and whichever holds the event.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.events import parse_consent, parse_event
from broker.keys import FileKeyStore
from broker.policy import Policy
from broker.sdk import Publisher
from broker.topics import CONSENT, QUARANTINE, ingress
from tests.e2e.worker_proc import (
    POLICIES,
    WorkerProcess,
    assert_exactly_once,
    incidents,
    prepared,
    read_all,
    read_audit,
    received_ids,
    verify_chains,
)
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def prepared_once(
    isolated_kafka: EmbeddedKafka, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Policy, FileKeyStore]:
    """One keystore for the module's broker: its changelog is MAC'd under one linkage key."""
    return await prepared(isolated_kafka.bootstrap, tmp_path_factory.mktemp("group"))


EVENTS = 5000
KILLS = 5


def _held(worker: WorkerProcess) -> set[str]:
    """The partitions a worker's log says it was last given (it logs names, never people)."""
    held: set[str] = set()
    for line in worker.log.read_text(errors="replace").splitlines():
        if '"partitions_revoked"' in line or '"worker_started"' in line:
            held = set()
        if '"partitions_assigned"' in line:
            held |= set(json.loads(line)["partitions"])
    return held


async def _both_at_work(a: WorkerProcess, b: WorkerProcess) -> None:
    for _ in range(240):
        if _held(a) and _held(b):
            return
        assert a.alive(), a.tail()
        assert b.alive(), b.tail()
        await asyncio.sleep(0.5)
    raise AssertionError("the two workers did not share the partitions within 2 minutes")


async def test_sigkilling_either_of_two_workers_loses_and_doubles_nothing(
    isolated_kafka: EmbeddedKafka, prepared_once: tuple[Policy, FileKeyStore], tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = prepared_once
    workers = []
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        workers.append(WorkerProcess(tmp_path / name, keys, bootstrap, POLICIES))
    args = {w: ("--instance", n, "--checkpoint-every", "200")
            for w, n in zip(workers, ("alpha", "beta"), strict=True)}  # fmt: skip
    events = incidents(EVENTS)
    for w in workers:
        w.start(*args[w])

    killed = asyncio.Event()

    async def publish() -> None:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            for i in range(0, EVENTS, 50):
                await pub.publish_many(events[i : i + 50])
                if not killed.is_set():  # ~80 events/s until the last kill, then the rest
                    await asyncio.sleep(0.6)  # at once: the stream spans every kill

    try:
        await _both_at_work(*workers)
        publisher = asyncio.create_task(publish())
        rng = random.Random(14)  # noqa: S311  # test timing, not cryptography
        for k in range(KILLS):
            await _both_at_work(*workers)  # the group rebalanced since the last kill
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            victim = workers[k % 2]
            victim.kill()  # its open transactions and partitions are left to the group
            victim.start(*args[victim])
        killed.set()
        await publisher
        received: set[str | None] = set()
        for _ in tries_within(540):  # 9 minutes to drain after the last rebalance
            received = await received_ids(bootstrap)
            if len(received) >= EVENTS:
                break
            for w in workers:
                assert w.alive(), w.tail()
            await asyncio.sleep(2)
        assert len(received) == EVENTS, workers[0].tail() + workers[1].tail()
        assert all(_held(w) for w in workers)  # both at work at the end, too
    finally:
        for w in workers:
            w.stop()

    audit = await assert_exactly_once(bootstrap, policy, keys, events)
    assert await read_all(bootstrap, QUARANTINE) == []
    reports = verify_chains(audit, keys)
    # One chain per input partition, whichever worker wrote each stretch of it.
    assert {f"worker:{ingress('wmp')}-{p}" for p in range(3)} <= set(reports)
    for w in workers:
        assert "Traceback" not in w.log.read_text(errors="replace")


def _consent(nhs_number: str) -> dict[str, Any]:
    recorded = datetime.now(UTC) - timedelta(minutes=1)
    return {"subject": {"nhs_number": nhs_number}, "state": "given",
            "purposes": ["early_help"], "recipients": ["kind:hub"],
            "recorded_by": "sandwell-coord",
            "recorded_at": recorded.isoformat().replace("+00:00", "Z")}  # fmt: skip


async def test_a_consent_published_before_an_event_governs_it_whichever_worker_takes_each(
    isolated_kafka: EmbeddedKafka, prepared_once: tuple[Policy, FileKeyStore], tmp_path: Path
) -> None:
    """Each event is published the moment its child's consent is acknowledged; consent
    records and events spread over partitions both workers hold, so most pairs cross from
    one worker to the other. Every decision the consent changes must be the one made with
    it, as the policy engine alone computes."""
    bootstrap = isolated_kafka.bootstrap
    policy, keys = prepared_once
    events = incidents(40, seed=7)  # not the module's other test's events (replays)
    consents = [_consent(e["subjects"][0]["nhs_number"]) for e in events]
    now = datetime.now(UTC)
    expected: dict[tuple[str, str], tuple[str, str | None]] = {}
    for event, consent in zip(events, consents, strict=True):
        parsed = parse_event(event, now=now)
        given = {
            d.recipient: (d.outcome, d.reason)
            for d in policy.decide(parsed, [parse_consent(consent, now=now)], at=now)
        }
        without = {d.recipient: (d.outcome, d.reason) for d in policy.decide(parsed, [], at=now)}
        expected |= {(event["event_id"], r): o for r, o in given.items() if without[r] != o}
    assert expected, "the consent must change some decision, or this tests nothing"
    workers = []
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        worker = WorkerProcess(tmp_path / name, keys, bootstrap, POLICIES)
        worker.start("--instance", name)
        workers.append(worker)
    try:
        await _both_at_work(*workers)
        held = [_held(w) for w in workers]
        consent_parts = [{p for p in h if p.startswith(CONSENT)} for h in held]
        assert all(consent_parts), held  # each worker holds some consent partition
        async with (
            Publisher("sandwell-coord", keys, clients(bootstrap, "sandwell-coord")) as coord,
            Publisher("wmp", keys, clients(bootstrap, "wmp")) as police,
        ):
            for event, consent in zip(events, consents, strict=True):
                await coord.publish_consent(consent)
                await police.publish(event)
        for _ in tries_within(300):
            audit = await read_audit(bootstrap)
            got = {(r.event_id, r.party): r for r in audit if r.kind is AuditKind.DECIDED
                   and (r.event_id, r.party) in expected}  # fmt: skip
            if len(got) == len(expected):
                break
            await asyncio.sleep(1)
    finally:
        for w in workers:
            w.stop()
    assert {k: (r.data["outcome"], r.data["reason"]) for k, r in got.items()} == expected
    # The pairs crossed: events were decided on partitions of both workers.
    chains = {r.chain.removeprefix("worker:") for r in got.values()}
    assert all(chains & h for h in held), (chains, held)
