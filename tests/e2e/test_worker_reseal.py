"""A running worker given a new encryption key seals its consent state again to it, on a real
broker and with no restart: the old key revoked at once, the consent still governs."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.errors import ConfigError
from broker.events import parse_consent, parse_event
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.pipeline._restore import restore_state
from broker.pipeline._state import state_mac_key
from broker.sdk import Publisher
from broker.topics import STATE
from tests.e2e.worker_proc import (
    incidents,
    project_broker,
    read_all,
    read_audit,
    worker_in_process,
)
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

STALE = "accord_worker_state_entries_stale"

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _consent(nhs_number: str) -> dict[str, Any]:
    recorded = datetime.now(UTC) - timedelta(minutes=1)
    return {"subject": {"nhs_number": nhs_number}, "state": "given",
            "purposes": ["early_help"], "recipients": ["kind:hub"],
            "recorded_by": "sandwell-coord",
            "recorded_at": recorded.isoformat().replace("+00:00", "Z")}  # fmt: skip


async def _consent_entries(bootstrap: str, at_least: int) -> list[Any]:
    """The changelog's consent entries, once there are ``at_least``."""
    for _ in tries_within(240):
        got = [m for m in await read_all(bootstrap, STATE) if m.key and m.key.startswith(b"k:")]
        if len(got) >= at_least:
            return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} consent entries in {STATE}")


async def _stale(registry: CollectorRegistry, value: float) -> None:
    for _ in range(1000):
        if registry.get_sample_value(STALE) == value:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{STALE} is {registry.get_sample_value(STALE)}, not {value}")


async def _decided(bootstrap: str, event_id: str) -> dict[str, str]:
    for _ in tries_within(240):
        decided = {
            str(r.party): str(r.data["outcome"])
            for r in await read_audit(bootstrap)
            if r.kind is AuditKind.DECIDED and r.event_id == event_id and r.data is not None
        }
        if decided:
            return decided
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not decide the event")


async def test_a_running_worker_reseals_consent_under_a_new_key_and_revoking_the_old_loses_none(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = project_broker(bootstrap, tmp_path)
    [event] = incidents(1, seed=41)
    consent = _consent(event["subjects"][0]["nhs_number"])
    now = datetime.now(UTC)
    parsed = parse_event(event, now=now)
    given = {d.recipient: d.outcome for d in policy.decide(parsed, [parse_consent(consent, now=now)], at=now)}  # fmt: skip  # noqa: E501
    without = {d.recipient: d.outcome for d in policy.decide(parsed, [], at=now)}
    changed = {r: o for r, o in given.items() if without[r] != o}
    assert changed, "the consent must change some decision, or this tests nothing"

    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (
        task,
        running,
    ):
        async with Publisher("sandwell-coord", keys, clients(bootstrap, "sandwell-coord")) as p:
            await p.publish_consent(consent)
        [filed] = await _consent_entries(bootstrap, 1)
        old = [k.key_id for k in keys.keys("worker")]
        await _stale(running, 0)  # the tail has read the entry, under the current key
        shutil.copytree(keys.path, tmp_path / "keys-before-rotation")
        # As an imported directory would: the running worker's keystore reads it afresh.
        keys.rotate("worker", grace=timedelta(days=45))  # the kind keystore_for made
        # The keystore is looked at again once a second: the scrape that sees the new key
        # counts the entry, before the watcher's next look re-seals it.
        await _stale(running, 1)
        resealed = await _consent_entries(bootstrap, 2)  # within the key watcher's 5 s
        assert {m.key for m in resealed} == {filed.key}
        await _stale(running, 0)  # the re-seal read back: what operators wait for to revoke
        assert not task.done()

    # A worker given the keystore as it was before the rotation (an old copy, a restore from
    # an old backup) refuses to start: it would quarantine records sealed to the new key.
    behind = FileKeyStore(tmp_path / "keys-before-rotation")
    new = {k.key_id for k in keys.keys("worker")} - set(old)
    with pytest.raises(ConfigError, match="refusing to start") as refused:
        await restore_state(
            clients(bootstrap, "worker"), behind, state_mac_key(behind.linkage_key())
        )
    assert any(key_id in str(refused.value) for key_id in new)

    # Revoked at once, as after a compromise: nothing sealed to them opens any more.
    for key_id in old:
        keys.revoke(key_id)
    store = FileKeyStore(keys.path)
    reader, _ = await restore_state(
        clients(bootstrap, "worker"), store, state_mac_key(store.linkage_key())
    )
    assert reader.report.refused == {}
    assert len(reader.view.consents) == 1

    async with (
        worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (_, registry),
        Publisher("wmp", keys, clients(bootstrap, "wmp")) as police,
    ):
        assert (
            registry.get_sample_value("accord_state_entries_refused_total", {"kind": "k"}) is None
        )
        await police.publish(event)
        decided = await _decided(bootstrap, event["event_id"])
    assert {r: decided[r] for r in changed} == changed
