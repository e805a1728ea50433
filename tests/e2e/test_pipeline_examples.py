"""The shared example scenarios through the real pipeline: SDK → Kafka → worker → SDK.

Every event of ``../shared/examples/scenarios`` is published through the SDK (consents too,
by the party that recorded them); each recipient's subscriber must receive exactly the
redacted views the policy engine predicts — given the consents the worker has seen so far —
and nothing else, and the audit topic must hold one ``decided`` record per candidate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier, verify_chain
from broker.config import KafkaSettings, KeystoreSettings, Settings
from broker.devkafka import EmbeddedKafka
from broker.envelope import Opener
from broker.errors import WrongRecipient
from broker.events import parse_consents, parse_event
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore, load_linkage_key
from broker.linkage import Linker
from broker.pipeline import Worker, WorkerOptions
from broker.policy import Decision, Policy, Scenario, load_bundle, load_scenarios, redact
from broker.sdk import Delivery, Publisher, Subscriber, WithdrawalNotice
from broker.topics import AUDIT, deliver
from tests.kafka_helpers import read_to_end

pytestmark = pytest.mark.slow


async def read_audit(bootstrap: str) -> list[AuditRecord]:
    return [AuditRecord.model_validate_json(m.value) for m in await read_to_end(bootstrap, AUDIT)]


def all_scenarios(shared_dir: Path) -> list[Scenario]:
    return [s for f in sorted((shared_dir / "examples" / "scenarios").glob("*.yaml"))
            for s in load_scenarios(f)]  # fmt: skip


def busiest_child(scenarios: list[Scenario]) -> str:
    """The NHS number of the child seen in the most example events."""
    counts = Counter(
        subj["nhs_number"] for s in scenarios for subj in s.event["subjects"]
        if subj["role"] == "child" and subj.get("nhs_number")
    )  # fmt: skip
    return counts.most_common(1)[0][0]


def scenario_event_id(scenario: Scenario) -> str:
    # The examples reuse event ids across scenarios; end to end, each event needs its own.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, scenario.name))


class Harness:
    """A worker on its own broker, with a clock the test moves to each scenario's time."""

    def __init__(self, bootstrap: str, policies: Path, keys: FileKeyStore, home: Path) -> None:
        self.bootstrap = bootstrap
        self.policy: Policy = load_bundle(policies)
        self.keys = keys
        self.now: datetime | None = None
        settings = Settings(
            home=home,
            kafka=KafkaSettings(bootstrap=bootstrap, partitions=2),
            keystore=KeystoreSettings(path=keys.path),
        )
        self.kafka = KafkaClients(settings.kafka)
        self.worker = Worker(
            settings,
            WorkerOptions(policies=policies, checkpoint_every=7),
            kafka=self.kafka,
            registry=CollectorRegistry(),
            clock=self.clock,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.consents: list[Any] = []
        self.candidates = 0
        self.expected: dict[str, dict[str, dict[str, Any]]] = {}  # recipient → event → view

    def clock(self) -> datetime:
        assert self.now is not None
        return self.now

    async def wait_for(self, done: Callable[[list[AuditRecord]], bool]) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            assert self.task is not None
            if self.task.done():
                self.task.result()  # the worker died: show why
                pytest.fail("the worker stopped")
            if done(await read_audit(self.bootstrap)):
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail("the worker did not get there within 60 s")
            await asyncio.sleep(0.2)

    def count(self, kind: AuditKind, n: int) -> Callable[[list[AuditRecord]], bool]:
        return lambda records: sum(r.kind is kind for r in records) >= n

    async def start(self, at: datetime) -> None:
        self.now = at
        self.task = asyncio.create_task(self.worker.run(self.stop))
        await self.wait_for(self.count(AuditKind.POLICY_LOADED, 1))

    async def finish(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)

    async def play(self, scenario: Scenario, pseudonym_key: bytes) -> None:
        self.now = scenario.at
        for consent in scenario.consents:
            if consent not in self.consents:
                self.consents.append(consent)
                async with Publisher(consent["recorded_by"], self.keys, self.kafka) as pub:
                    await pub.publish_consent(consent)
        await self.wait_for(self.count(AuditKind.CONSENT_RECORDED, len(self.consents)))

        event = dict(scenario.event, event_id=scenario_event_id(scenario))
        parsed = parse_event(event, now=scenario.at)
        consents = parse_consents(self.consents, now=None)
        decisions = self.policy.decide(parsed, consents, at=scenario.at)
        self.candidates += len(decisions)
        for d in decisions:
            if d.shares:
                view = redact(parsed, d, pseudonym_key=pseudonym_key)
                self.expected.setdefault(d.recipient, {})[event["event_id"]] = view
        async with Publisher(event["sender"], self.keys, self.kafka) as pub:
            await pub.publish(event)
        await self.wait_for(self.count(AuditKind.DECIDED, self.candidates))

    async def play_all(
        self, scenarios: list[Scenario], linker: Linker, pseudonym_key: bytes = b"p" * 32
    ) -> list[tuple[Decision, tuple[str, ...]]]:
        """Play every scenario; each decision the engine predicts, with the subject keys it
        names (all of the event's when the decision names none)."""
        out = []
        for scenario in scenarios:
            await self.play(scenario, pseudonym_key)
            event = dict(scenario.event, event_id=scenario_event_id(scenario))
            parsed = parse_event(event, now=scenario.at)
            keys = tuple(linker.subject_key(s) for s in parsed.subjects)
            consents = parse_consents(self.consents, now=None)
            for d in self.policy.decide(parsed, consents, at=scenario.at):
                out.append((d, tuple(keys[i] for i in d.subjects) or keys))
        return out

    async def received(
        self, recipient: str, *, expect: int
    ) -> tuple[dict[str, Any], list[WithdrawalNotice]]:
        """What ``recipient`` receives: polled until ``expect`` deliveries came (or 60 s), then
        until two quiet polls, which would show a duplicate or an extra record."""
        views: dict[str, Any] = {}
        notices: list[WithdrawalNotice] = []
        async with Subscriber(recipient, self.keys, self.kafka, group=f"e2e-{recipient}") as sub:
            deadline = asyncio.get_running_loop().time() + 60
            quiet = 0
            while quiet < 2 and asyncio.get_running_loop().time() < deadline:
                records = await sub.poll(0.5)
                quiet = quiet + 1 if not records and len(views) >= expect else 0
                for record in records:
                    if isinstance(record.message, Delivery):
                        assert record.message.event_id not in views, "delivered twice"
                        views[record.message.event_id] = record.message.view
                    else:
                        notices.append(record.message)
            assert sub.unopenable == []
        return views, notices


@pytest.fixture
def keys(tmp_path: Path, shared_dir: Path) -> FileKeyStore:
    store = FileKeyStore(tmp_path / "keys", create=True)
    policy = load_bundle(shared_dir / "examples" / "policies")
    for party in [*policy.bundle.parties, "worker", "audit", "governance"]:
        store.ensure_party(party)
    return store


async def test_shared_scenarios_flow_end_to_end_exactly_as_the_policy_predicts(
    isolated_kafka: EmbeddedKafka, shared_dir: Path, tmp_path: Path, keys: FileKeyStore
) -> None:
    h = Harness(isolated_kafka.bootstrap, shared_dir / "examples" / "policies", keys, tmp_path)
    scenarios = all_scenarios(shared_dir)
    await h.start(scenarios[0].at)
    digest = hmac.new(load_linkage_key(keys.path), b"accord/pseudonym/v1", hashlib.sha256)
    try:
        for scenario in scenarios:
            await h.play(scenario, digest.digest())
    finally:
        await h.finish()

    notices: dict[str, list[WithdrawalNotice]] = {}
    for recipient, party in h.policy.bundle.parties.items():
        if party.kind == "agency":
            continue
        views, got_notices = await h.received(recipient, expect=len(h.expected.get(recipient, {})))
        assert views == h.expected.get(recipient, {}), recipient
        if got_notices:
            notices[recipient] = got_notices

    # The withdrawal tells the hub that had received the child's records under consent.
    assert set(notices) == {"hub-tipton"}
    family = next(s for s in scenarios if "minimal, generalised" in s.name)
    assert [n.event_ids for n in notices["hub-tipton"]] == [(scenario_event_id(family),)]

    audit = await read_audit(isolated_kafka.bootstrap)
    decided = [r for r in audit if r.kind is AuditKind.DECIDED]
    per_candidate = Counter((r.event_id, r.party) for r in decided)
    assert len(per_candidate) == h.candidates
    assert set(per_candidate.values()) == {1}
    assert any(r.data["outcome"] == "not_shared" for r in decided)
    assert [r for r in audit if r.kind is AuditKind.QUARANTINED] == []
    assert verify_chain(audit, KeystoreAuditVerifier(keys)).last_checkpoint_seq is not None

    # A hub's key cannot open another hub's records.
    raw = (await read_to_end(isolated_kafka.bootstrap, deliver("hub-tipton")))[0]
    with pytest.raises(WrongRecipient):
        Opener("hub-oldbury", keys).open_kafka(raw.value or b"", raw.headers)
