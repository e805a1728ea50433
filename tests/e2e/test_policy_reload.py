"""SIGHUP reloads the policy bundle; a bundle that fails its checks leaves the old one in force."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.audit import AuditKind, AuditRecord
from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from tests.e2e.worker_proc import WorkerProcess, keystore_for, read_audit
from tests.kafka_helpers import clients, provisioned, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"
COORD = "sandwell-coord"


async def _until(
    bootstrap: str, worker: WorkerProcess, done: Callable[[list[AuditRecord]], bool]
) -> list[AuditRecord]:
    for _ in tries_within(240):
        audit = await read_audit(bootstrap)
        if done(audit):
            return audit
        assert worker.alive(), worker.tail()
        await asyncio.sleep(0.5)
    pytest.fail(f"the worker did not get there; log:\n{worker.tail()}")


async def _publish_and_decide(
    bootstrap: str, keys: FileKeyStore, worker: WorkerProcess, fam: SyntheticFamilies
) -> AuditRecord:
    """Publish one incident the co-ordinating team is a candidate for; its coord decision."""
    subjects = [fam.subject("child", postcode="DY4 7AA"), fam.subject("parent", postcode="DY4 7AA")]
    event = fam.event("police.domestic_incident", "wmp", subjects=subjects)
    async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
        await pub.publish(event)

    def decided(audit: list[AuditRecord]) -> bool:
        return any(r.event_id == event["event_id"] and r.party == COORD
                   and r.kind is AuditKind.DECIDED for r in audit)  # fmt: skip

    audit = await _until(bootstrap, worker, decided)
    return next(r for r in audit if r.event_id == event["event_id"] and r.party == COORD
                and r.kind is AuditKind.DECIDED)  # fmt: skip


def _loads(audit: list[AuditRecord]) -> list[str]:
    return [r.data["version"] for r in audit if r.kind is AuditKind.POLICY_LOADED]


async def test_sighup_puts_a_good_bundle_in_force_and_refuses_a_broken_one(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle, ignore=shutil.ignore_patterns("scenarios"))
    first = load_bundle(bundle)
    keys = keystore_for(first, tmp_path / "keys")
    provisioned(bootstrap, first)
    worker = WorkerProcess(tmp_path, keys, bootstrap, bundle)
    fam = SyntheticFamilies(seed=31)
    worker.start()
    try:
        before = await _publish_and_decide(bootstrap, keys, worker, fam)
        assert before.data["outcome"] == "shared"
        assert before.data["policy_version"] == first.version

        # Suspend the co-ordinating team; the reloaded bundle must refuse it everything.
        parties = bundle / "parties.yaml"
        text = parties.read_text()
        marker = f"  {COORD}:\n"
        assert marker in text
        parties.write_text(text.replace(marker, f"{marker}    status: suspended\n", 1))
        second = load_bundle(bundle)
        worker.signal(signal.SIGHUP)
        await _until(bootstrap, worker, lambda a: second.version in _loads(a))
        after = await _publish_and_decide(bootstrap, keys, worker, fam)
        assert (after.data["outcome"], after.data["reason"]) == ("not_shared", "party-inactive")
        assert after.data["policy_version"] == second.version

        # A broken bundle: refused, the running one stays in force, the worker keeps going.
        (bundle / "restrictions.yaml").write_text("restrictions: [unclosed\n")
        worker.signal(signal.SIGHUP)
        still = await _publish_and_decide(bootstrap, keys, worker, fam)
        assert still.data["policy_version"] == second.version
        # Every task put each bundle on its own chain, in order; the broken one on none.
        by_chain: dict[str, list[str]] = {}
        for r in await read_audit(bootstrap):
            if r.kind is AuditKind.POLICY_LOADED:
                by_chain.setdefault(r.chain, []).append(r.data["version"])
        assert set(map(tuple, by_chain.values())) == {(first.version, second.version)}
        assert worker.alive()
        assert "policy_reload_refused" in worker.log.read_text()
    finally:
        worker.stop()
