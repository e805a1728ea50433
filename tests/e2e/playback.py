"""Playing policy scenarios through a real worker on real Kafka, for the e2e tests.

``Harness`` runs a worker in-process with a clock the test moves to each scenario's time, and
publishes each scenario's consents and event through the SDK, predicting with ``decide``
(given every consent published so far) what each recipient must receive.
``PROJECT_PLAYBACK`` is the selection of the project's own scenarios (``policies/scenarios``)
that the audit-index and console tests play; the shared examples are played only by the
conformance run (``test_pipeline_examples.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, AuditRecord
from broker.config import KafkaSettings, KeyProtection, KeystoreSettings, Settings
from broker.events import parse_consents, parse_event
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.pipeline import Worker, WorkerOptions
from broker.policy import Decision, Policy, Scenario, load_bundle, load_scenarios, redact
from broker.sdk import Delivery, Publisher, Subscriber, WithdrawalNotice, default_replay_file
from tests.e2e.worker_proc import read_audit
from tests.kafka_helpers import clients, provisioned

PROJECT_POLICIES = Path(__file__).resolve().parents[2] / "policies"

# What the audit-index and console tests play, in this order: about as many events as the
# shared examples hold, chosen so that one child (Ruby Holland, in five police events) has
# decisions of every kind, exactly one safeguarding override awaits review, and a consent
# given, shared under and then withdrawn is among them. ``None``: every scenario of the file.
PROJECT_PLAYBACK: dict[str, tuple[str, ...] | None] = {
    # Tipton and Heath Town incidents: schools, the co-ordinating team, COG and SFH hubs,
    # the MASH; consent missing and given, conditions false, a suspended agreement.
    "police-and-encompass.yaml": None,
    "safeguarding-override.yaml": (
        # The one override (to the co-ordinating team, consent missing) ...
        "justified concern overrides missing consent for the co-ordinating team only",
        # ... then the same family consents, is shared with under consent, and withdraws
        # the co-ordinating team's consent (which therefore gets a withdrawal notice).
        "with consent a concern needs no override - an ordinary share on the clause's basis",
        "consent withdrawn from the co-ordinating team only leaves the COG's consent standing",
    ),
    "sensitive-and-refuge.yaml": (
        "family in a refuge - no address, postcode or location reaches anyone",
    ),
    "wolverhampton-routing.yaml": (
        "Bilston police notice with consent - initials, year of birth, pseudonymised NHS number",
    ),
}


def all_scenarios(folder: Path) -> list[Scenario]:
    """Every scenario of every ``*.yaml`` file in ``folder``, files in name order."""
    return [s for f in sorted(folder.glob("*.yaml")) for s in load_scenarios(f)]


def project_scenarios() -> list[Scenario]:
    """``PROJECT_PLAYBACK`` from ``policies/scenarios``; a name no longer there is an error."""
    out: list[Scenario] = []
    for file, names in PROJECT_PLAYBACK.items():
        scenarios = load_scenarios(PROJECT_POLICIES / "scenarios" / file)
        if names is None:
            out += scenarios
            continue
        by_name = {s.name: s for s in scenarios}
        missing = [n for n in names if n not in by_name]
        assert not missing, f"{file} no longer has the scenarios {missing}"
        out += [by_name[n] for n in names]
    return out


def busiest_child(scenarios: list[Scenario]) -> str:
    """The NHS number of the child seen in the most of these scenarios' events."""
    counts = Counter(
        subj["nhs_number"] for s in scenarios for subj in s.event["subjects"]
        if subj["role"] == "child" and subj.get("nhs_number")
    )  # fmt: skip
    return str(counts.most_common(1)[0][0])


def scenario_event_id(scenario: Scenario) -> str:
    # Scenarios reuse event ids across scenarios; end to end, each event needs its own.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, scenario.name))


class Harness:
    """A worker on its own broker, with a clock the test moves to each scenario's time."""

    def __init__(self, bootstrap: str, policies: Path, keys: FileKeyStore, home: Path) -> None:
        self.bootstrap = bootstrap
        self.policy: Policy = load_bundle(policies)
        self.keys = keys
        self.home = home
        self.now: datetime | None = None
        settings = Settings(
            home=home,
            kafka=KafkaSettings(bootstrap=bootstrap, partitions=2),
            keystore=KeystoreSettings(path=keys.path, protection=KeyProtection.NONE),
        )
        provisioned(bootstrap, self.policy)  # each of them logs in as itself, below
        self.worker = Worker(
            settings,
            WorkerOptions(policies=policies, checkpoint_every=7),
            kafka=clients(bootstrap, "worker"),
            registry=CollectorRegistry(),
            clock=self.clock,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.consents: list[Any] = []
        self.candidates = 0
        self.expected: dict[str, dict[str, dict[str, Any]]] = {}  # recipient → event → view

    def _as(self, principal: str) -> KafkaClients:
        """``principal``'s own login; the admin's for a suspended party, which holds no grant
        (the test still checks that nothing reached it)."""
        party = self.policy.bundle.parties.get(principal)
        if party is not None and party.status == "suspended":
            return clients(self.bootstrap)
        return clients(self.bootstrap, principal)

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
                async with Publisher(
                    consent["recorded_by"], self.keys, self._as(consent["recorded_by"])
                ) as pub:
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
        async with Publisher(event["sender"], self.keys, self._as(event["sender"])) as pub:
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
        group = f"{recipient}.e2e"
        memory = default_replay_file(group, self.home)  # the test's home, not the user's
        async with Subscriber(
            recipient, self.keys, self._as(recipient), group, replay_memory=memory
        ) as sub:
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
