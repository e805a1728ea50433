"""Running ``accord worker`` as a real subprocess in e2e tests, reading topics back, and the
incident stream and exactly-once check the worker tests share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, AuditRecord, ChainReport, KeystoreAuditVerifier, verify_chain
from broker.config import KafkaSettings, KeyProtection, KeystoreSettings, Settings
from broker.desk import desk_linkage_key
from broker.devkafka import free_port
from broker.envelope import InMemoryReplayGuard, Opener
from broker.events import parse_event
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline import Worker, WorkerOptions
from broker.policy import Policy, load_bundle
from broker.sdk import Delivery
from broker.synthetic import SyntheticFamilies
from broker.topics import AUDIT, deliver
from tests.kafka_helpers import clients, kafka_env, provisioned, read_to_end


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic``, read to its end."""
    return await read_to_end(bootstrap, topic)


async def read_audit(bootstrap: str) -> list[AuditRecord]:
    return [AuditRecord.model_validate_json(m.value) for m in await read_all(bootstrap, AUDIT)]


async def received_ids(bootstrap: str) -> set[str | None]:
    """The event ids the worker has audited as ``received`` so far."""
    return {r.event_id for r in await read_audit(bootstrap) if r.kind is AuditKind.RECEIVED}


def keystore_for(policy: Policy, path: Path) -> FileKeyStore:
    keys = FileKeyStore(path, create=True)
    for party in policy.bundle.parties:
        keys.ensure_party(party)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        keys.ensure_party(principal, purposes=purposes)
    keys.set_linkage_key()  # the worker refuses to start without one
    # As enrolment (keys init, desk add-user) makes them, one per party: a desk and its flag
    # service only read theirs, and refuse to start without it.
    for party in policy.bundle.parties:
        desk_linkage_key(keys, party=party, create=True)
    return keys


class WorkerProcess:
    """``python -m broker worker`` with its JSON logs captured to a file."""

    def __init__(self, home: Path, keys: FileKeyStore, bootstrap: str, policies: Path) -> None:
        self.env = {
            **os.environ,
            "ACCORD_HOME": str(home),
            **kafka_env(bootstrap),  # the worker logs in as itself
            "ACCORD_KEYSTORE__PATH": str(keys.path),
            # Tests SIGKILL workers and restart them at once: the group waits out a killed
            # member's session before the restarted one gets its partitions. The 45 s default
            # would make each kill wait that long; the broker's least, 6 s (heartbeats every
            # 2 s), is plenty for a test's worker, which has its event loop to itself.
            "ACCORD_WORKER__GROUP_SESSION_TIMEOUT_MS": "6000",
        }
        self.policies = policies
        self.log = home / "worker.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "worker", "--policies", str(self.policies),
                 "--metrics-port", str(self.metrics_port), *extra],
                env=self.env, stdout=subprocess.DEVNULL, stderr=fh,
            )  # fmt: skip

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, an open transaction left behind."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            assert self.proc is not None
            self.proc.wait(timeout=60)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


# -- the West Midlands incident stream the worker e2e tests share ----------------------------

POLICIES = Path(__file__).resolve().parents[2] / "policies"


async def prepared(bootstrap: str, home: Path) -> tuple[Policy, FileKeyStore]:
    """The example bundle, a keystore for every party, and its topics, logins and ACLs."""
    policy = load_bundle(POLICIES)
    keys = keystore_for(policy, home / "keys")
    provisioned(bootstrap, policy)
    return policy, keys


def incidents(n: int, seed: int = 99) -> list[dict[str, Any]]:
    """Police incidents in Tipton and Wednesbury: the coordinator, a hub and a school care."""
    fam = SyntheticFamilies(seed=seed)
    events = []
    for i in range(n):
        family, postcode = fam.faker.last_name(), fam.postcode(("DY4", "WS10"))
        child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
        parent = fam.subject("parent", family_name=family, postcode=postcode)
        events.append(fam.event("police.domestic_incident", "wmp", subjects=[child, parent],
                                need_level=2 + i % 3))  # fmt: skip
    return events


def predicted(
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


async def assert_exactly_once(
    bootstrap: str, policy: Policy, keys: FileKeyStore, events: list[dict[str, Any]]
) -> list[AuditRecord]:
    """Each permitted recipient got each event once, nobody else did, one ``decided`` per
    candidate; returns the audit log for further checks."""
    expected, candidates = predicted(policy, events)
    assert expected, "the scenario must share with someone"
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
    decided = Counter((r.event_id, r.party) for r in audit if r.kind is AuditKind.DECIDED)
    assert decided == candidates
    return audit


def verify_chains(audit: list[AuditRecord], keys: FileKeyStore) -> dict[str, ChainReport]:
    """Verify every chain in ``audit`` (one per input partition a worker processed), each with
    a signed checkpoint; their reports by chain."""
    by_chain: dict[str, list[AuditRecord]] = {}
    for r in audit:
        by_chain.setdefault(r.chain, []).append(r)
    verifier = KeystoreAuditVerifier(keys)
    reports = {c: verify_chain(rs, verifier, expect_chain=c) for c, rs in by_chain.items()}
    unsigned = [c for c, report in reports.items() if report.last_checkpoint_seq is None]
    assert not unsigned, f"chains without a signed checkpoint: {unsigned}"
    return reports


async def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: its end offset minus ``group``'s committed offset."""
    admin = clients(bootstrap).admin()
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer = clients(bootstrap).consumer(topic, client_id="test-lag")
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        for _ in range(100):
            if tps := sorted(consumer.assignment()):
                break
            await asyncio.sleep(0.1)
        assert tps, f"no partitions of {topic}"
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    return {tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps}


@contextlib.asynccontextmanager
async def worker_in_process(
    bootstrap: str, home: Path, keys: FileKeyStore, options: WorkerOptions
) -> AsyncIterator[tuple[asyncio.Task[None], CollectorRegistry]]:
    """A worker logged in as itself, running in this event loop until the block ends; the
    task (to check it is still running) and its metrics registry."""
    plain = KeystoreSettings(path=keys.path, protection=KeyProtection.NONE)  # synthetic keys
    settings = Settings(home=home, kafka=KafkaSettings(bootstrap=bootstrap, partitions=2),
                        keystore=plain)  # fmt: skip
    registry = CollectorRegistry()
    worker = Worker(settings, options, kafka=clients(bootstrap, "worker"), registry=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    started = asyncio.create_task(worker.started.wait())
    try:
        await asyncio.wait({task, started}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # a worker that refused to start says why
        assert worker.started.is_set(), "the worker did not start within 60 s"
        yield task, registry
    finally:
        started.cancel()
        stop.set()
        await asyncio.wait_for(task, 60)


def project_broker(bootstrap: str, home: Path) -> tuple[Policy, FileKeyStore]:
    """The project's bundle provisioned on the broker at ``bootstrap`` (topics, a login per
    principal, ACLs), and a keystore for all its parties under ``home``."""
    policy = load_bundle(POLICIES)
    keys = keystore_for(policy, home / "keys")
    provisioned(bootstrap, policy)
    return policy, keys
