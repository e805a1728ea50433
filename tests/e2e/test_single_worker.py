"""Exactly one worker is ever active: starting another fences the first, and nothing splits.

The worker keeps the consent table, replay ids and its chain head in memory, so two workers
committing side by side would each miss what the other commits (a consent withdrawal among
them). Both run as real subprocesses under different instance names; the second must fence
the first, which stops at its next commit with a line saying so, and every event must still
reach each permitted recipient exactly once, with one ``decided`` record per candidate across
both workers' audit chains, each of which verifies.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.audit import AuditKind, KeystoreAuditVerifier, verify_chain
from broker.devkafka import EmbeddedKafka
from broker.sdk import Publisher
from tests.e2e.worker_proc import (
    POLICIES,
    WorkerProcess,
    assert_exactly_once,
    incidents,
    prepared,
    read_audit,
    received_ids,
)
from tests.kafka_helpers import clients

pytestmark = pytest.mark.slow


async def test_a_second_worker_fences_the_first_and_nothing_is_lost_or_doubled(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = WorkerProcess(tmp_path / "a", keys, bootstrap, POLICIES)
    second = WorkerProcess(tmp_path / "b", keys, bootstrap, POLICIES)
    events = incidents(240)
    first.start("--instance", "alpha")
    try:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events[:120])
            for _ in range(120):  # the first worker is at work before the second arrives
                if any(r.kind is AuditKind.RECEIVED for r in await read_audit(bootstrap)):
                    break
                await asyncio.sleep(0.5)
            second.start("--instance", "beta")
            for _ in range(120):  # the second has fenced the first and is consuming
                if '"worker_started"' in second.tail():
                    break
                await asyncio.sleep(0.5)
            await pub.publish_many(events[120:])
        received: set[str | None] = set()
        for _ in range(240):
            received = await received_ids(bootstrap)
            if len(received) >= len(events) and not first.alive():
                break
            await asyncio.sleep(0.5)
        assert len(received) == len(events), second.tail()
        assert not first.alive(), "the first worker should have been fenced"
        assert first.proc is not None
        assert first.proc.returncode != 0
        log = first.log.read_text()
        assert "accord: error: another worker took over" in log
        assert "Traceback" not in log
        assert second.alive(), second.tail()
    finally:
        first.stop()
        second.stop()

    audit = await assert_exactly_once(bootstrap, policy, keys, events)
    verifier = KeystoreAuditVerifier(keys)
    for chain in ("worker:alpha", "worker:beta"):
        records = [r for r in audit if r.chain == chain]
        assert records, chain
        verify_chain(records, verifier)
