"""Junk in the worker's state topic: it restarts, reports it, and loses no committed decision.

Only the worker (and the admin) may write ``accord.worker.state``; here the admin's login
plays someone who wrote there anyway.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from broker._canonical import canonical_json
from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.envelope import Sealer
from broker.errors import ConfigError
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.synthetic import SyntheticFamilies
from broker.topics import SCHEMA_EVENT, STATE, ingress
from tests.e2e.worker_proc import project_broker, read_audit, verify_chains, worker_in_process
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"
Raw = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]  # topic, key, value, headers


def _sealed_events(keys: FileKeyStore, n: int, seed: int) -> list[tuple[str, Raw]]:
    fam, sealer = SyntheticFamilies(seed=seed), Sealer("wmp", keys)
    out = []
    for _ in range(n):
        e = fam.event(sender="wmp")
        s = sealer.seal(canonical_json(e), event_id=e["event_id"], recipient="worker",
                        schema=SCHEMA_EVENT, topic=ingress("wmp"))  # fmt: skip
        key = e["event_id"].encode()  # as the SDK keys it
        out.append((e["event_id"], (ingress("wmp"), key, s.value, list(s.headers))))
    return out


async def _produce(bootstrap: str, records: list[Raw]) -> None:
    producer = clients(bootstrap).producer("test-state-junk")
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def _received(bootstrap: str, ids: set[str]) -> Counter[str | None]:
    for _ in tries_within(240):
        audit = await read_audit(bootstrap)
        got = Counter(r.event_id for r in audit if r.kind is AuditKind.RECEIVED)
        if ids <= set(got):
            return got
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not receive them")


async def test_junk_state_entries_are_skipped_reported_and_nothing_committed_is_lost(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    first = _sealed_events(keys, 20, seed=1)
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)):
        await _produce(bootstrap, [raw for _, raw in first])
        await _received(bootstrap, {i for i, _ in first})

    junk: list[Raw] = [
        (STATE, f"h:worker:{ingress('wmp')}-0".encode(), b"{not json", []),  # crashed restores
        (STATE, f"o:{ingress('wmp')}:0".encode(), b"0", [("accord-state-mac", b"\x00" * 32)]),
        (STATE, b"c:n:forged", b"[]", []),  # consent the worker never filed
        (STATE, b"\xff\xfe", b"\x00", []),
        (STATE, b"r:" + first[0][0].encode(), b"1", []),
    ]
    await _produce(bootstrap, junk)
    second = _sealed_events(keys, 20, seed=2)
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (
        task, registry,
    ):  # fmt: skip
        for kind, n in {"h": 1, "o": 1, "c": 1, "?": 1, "r": 1}.items():
            assert (
                registry.get_sample_value("accord_state_entries_refused_total", {"kind": kind}) == n
            ), kind
        # The old events again (replays: their ids survived) and new ones.
        await _produce(bootstrap, [raw for _, raw in first[:5] + second])
        got = await _received(bootstrap, {i for i, _ in second})
        assert not task.done()
    assert got == Counter({i: 1 for i, _ in first + second})  # nothing twice, nothing lost
    audit = await read_audit(bootstrap)
    replays = [r for r in audit if r.kind is AuditKind.QUARANTINED and r.data["reason"] == "replay"]
    assert len(replays) == 5
    verify_chains(audit, keys)

    # A position nobody genuinely wrote is fatal, until the admin clears it with a tombstone.
    ghost = f"o:{ingress('wmp')}:7".encode()
    await _produce(bootstrap, [(STATE, ghost, b"0", [])])
    with pytest.raises(ConfigError, match="failed authentication"):
        async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)):
            pass
    await _produce(bootstrap, [(STATE, ghost, None, [])])
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (task, _):
        assert not task.done()
