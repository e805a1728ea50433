"""1,000 hostile records among 1,000 valid events: the worker never stops, nothing is lost.

Random bytes, truncated envelopes, broken signatures, replays, valid envelopes carrying invalid
or oversized events (some put right and sent again under the same id, which must then be
decided), records on another party's topic or a stranger's, null header values and
1 MB values are produced straight to Kafka, interleaved with valid events; a 10 MB value is
refused by the broker itself. One recipient's key is revoked. Every hostile record must land on
``accord.quarantine`` (sealed to the governance key, with its reason, a bounded copy) and be
audited as ``quarantined``; every valid event must be decided and delivered exactly once, the
recipient without a key refused with ``recipient-key-unavailable``; the worker must keep
running, and its audit chain must verify.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from broker._canonical import canonical_json
from broker.audit import AuditKind
from broker.config import KafkaSettings
from broker.devkafka import EmbeddedKafka
from broker.envelope import InMemoryReplayGuard, Opener, Sealer
from broker.kafka import KafkaClients, accord_topics, ensure_topics, partition_for
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.synthetic import SyntheticFamilies
from broker.topics import QUARANTINE, SCHEMA_EVENT, deliver, ingress
from tests.e2e.worker_proc import (
    project_broker,
    read_all,
    read_audit,
    verify_chains,
    worker_in_process,
)
from tests.kafka_helpers import clients, envelope_key, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"
Raw = tuple[str, bytes, list[tuple[str, bytes]]]  # topic, value, headers


class Forge:
    """Makes valid and hostile ingress records, and remembers which reason each should get."""

    def __init__(self, keys: FileKeyStore, rogue: FileKeyStore) -> None:
        self.fam = SyntheticFamilies(seed=4242)
        self.wmp = Sealer("wmp", keys)
        self.rogue = Sealer("wmp", rogue)  # same party name, keys the directory never saw
        self.rng = random.Random(4242)  # noqa: S311  # test data
        self.expected: Counter[str] = Counter()
        self.valid: list[str] = []
        self.rekeyed: dict[int, bytes] = {}  # id(value) -> the key it goes under

    def event(self, **changes: Any) -> dict[str, Any]:
        family, postcode = self.fam.faker.last_name(), self.fam.postcode(("DY4", "WS10"))
        subjects = [self.fam.subject("child", family_name=family, postcode=postcode, age=8,
                                     school_urn="146201"),  # so the school is a recipient
                    self.fam.subject("parent", family_name=family, postcode=postcode)]  # fmt: skip
        event = self.fam.event("police.domestic_incident", "wmp", subjects=subjects, need_level=3)
        event.update(changes)
        return event

    def sealed(self, event: dict[str, Any], sealer: Sealer | None = None) -> Raw:
        """Sealed honestly, by ``wmp`` (or a rogue with wmp's name), for wmp's own topic."""
        s = (sealer or self.wmp).seal(
            canonical_json(event),
            event_id=event["event_id"],
            recipient="worker",
            schema=SCHEMA_EVENT,
            topic=ingress("wmp"),
        )
        return ingress("wmp"), s.value, list(s.headers)

    def good(self) -> Raw:
        event = self.event()
        self.valid.append(event["event_id"])
        return self.sealed(event)

    def hostile(self, kind: str) -> list[Raw]:  # noqa: PLR0911, PLR0912  # a branch per attack
        rng = self.rng
        if kind == "random":
            self.expected["malformed"] += 1
            return [(ingress("wmp"), os.urandom(rng.randrange(1, 400)), [])]
        if kind == "truncated":
            self.expected["malformed"] += 1
            topic, value, headers = self.sealed(self.event())
            return [(topic, value[: rng.randrange(1, 20)], headers)]
        if kind == "bad-signature":
            self.expected["bad-signature"] += 1
            topic, value, headers = self.sealed(self.event())
            name, bundle = headers[0]
            return [(topic, value, [(name, bundle[:-1] + bytes([bundle[-1] ^ 0x01]))])]
        if kind == "unknown-key":
            self.expected["key-rejected"] += 1
            return [self.sealed(self.event(), self.rogue)]
        if kind == "replay":
            self.expected["replay"] += 1
            record = self.good()
            return [record, record]
        if kind == "replay-elsewhere":  # a copy under another key, so another partition
            self.expected["wrong-partition"] += 1
            topic, value, headers = self.good()
            copy = bytes(bytearray(value))  # an object of its own, to key apart
            here = partition_for(envelope_key(value), list(range(PARTITIONS)))
            key = os.urandom(16).hex().encode()
            while partition_for(key, list(range(PARTITIONS))) == here:  # else: a plain replay
                key = os.urandom(16).hex().encode()
            self.rekeyed[id(copy)] = key
            return [(topic, value, headers), (topic, copy, headers)]
        if kind == "invalid-event":
            self.expected["invalid-event"] += 1
            broken = rng.choice([
                {"need_level": 9},
                {"occurred_at": "2999-01-01T00:00:00Z"},
                {"summary": "x" * 50_000},  # beyond the free-text limit
                {"subjects": []},
            ])  # fmt: skip
            event = self.event(**broken)
            if rng.random() < 0.5:
                event = self.event()
                event["subjects"][0]["nhs_number"] = "9990000001"  # fails modulus 11
            return [self.sealed(event)]
        if kind == "corrected":  # invalid, then the same event put right under its id
            self.expected["invalid-event"] += 1
            event = self.event()
            invalid = self.sealed({**event, "need_level": 9})
            self.valid.append(event["event_id"])  # spent by no quarantine: decided
            return [invalid, self.sealed(event)]
        if kind == "wrong-topic":
            self.expected["wrong-topic"] += 1
            _, value, headers = self.sealed(self.event())
            return [(ingress("swbh"), value, headers)]
        if kind == "null-header":
            self.expected["malformed"] += 1
            topic, value, headers = self.sealed(self.event())
            return [(topic, value, [*headers, ("x-null", None)])]
        if kind == "one-megabyte":
            self.expected["malformed"] += 1
            return [(ingress("wmp"), os.urandom(1_000_000), [])]
        if kind == "stranger":
            self.expected["unknown-sender"] += 1
            _, value, headers = self.sealed(self.event())
            return [(ingress(STRANGER), value, headers)]
        raise AssertionError(kind)


KINDS = {"random": 150, "truncated": 100, "bad-signature": 100, "unknown-key": 100,
         "replay": 60, "replay-elsewhere": 40, "invalid-event": 120, "corrected": 30,
         "wrong-topic": 100, "null-header": 100, "one-megabyte": 20, "stranger": 80}  # fmt: skip
PARTITIONS = KafkaSettings().partitions  # as the test's topics are provisioned
STRANGER = "mallory"  # has a topic (an admin's slip), is no party of the bundle
REVOKED = "school-146201"  # a recipient of every valid event, its key revoked


async def _produce(kafka: KafkaClients, records: list[Raw], forge: Forge) -> None:
    """As the admin: an outsider who got write access anywhere, and oversized records."""
    producer = kafka.producer("test-hostile", max_request_size=11_000_000)
    await producer.start()
    try:
        for topic, value, headers in records:
            # Keyed as the SDK keys (its envelope's event id), except where the attack is
            # the key: a copy of a record under a key of its own.
            key = forge.rekeyed.get(id(value)) or envelope_key(value)
            await producer.send(topic, value, headers=headers, key=key)
        await producer.flush()
        with pytest.raises(MessageSizeTooLargeError):  # the broker refuses 10 MB outright
            await producer.send_and_wait(ingress("wmp"), os.urandom(10_000_000))
    finally:
        await producer.stop()


async def test_a_thousand_hostile_records_are_quarantined_and_valid_events_still_flow(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    assert sum(KINDS.values()) == 1000
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    kafka = clients(bootstrap)
    await ensure_topics(kafka, [t for t in accord_topics([STRANGER], [], KafkaSettings())
                                if t.name == ingress(STRANGER)])  # fmt: skip
    keys.revoke(keys.current_encryption_key(REVOKED).key_id)
    rogue = FileKeyStore(tmp_path / "rogue", create=True)
    rogue.ensure_party("wmp")
    rogue.ensure_party("worker")

    forge = Forge(keys, rogue)
    plan = [k for k, n in KINDS.items() for _ in range(n)]
    random.Random(1).shuffle(plan)  # noqa: S311  # test order, not cryptography
    records: list[Raw] = []
    for kind in plan:
        records += forge.hostile(kind)
        records.append(forge.good())
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (task, _):
        await _produce(kafka, records, forge)
        for _ in tries_within(400):
            audit = await read_audit(bootstrap)
            quarantined = [r for r in audit if r.kind is AuditKind.QUARANTINED]
            received = {r.event_id for r in audit if r.kind is AuditKind.RECEIVED}
            if len(quarantined) >= 1000 and len(received) >= len(forge.valid):
                break
            assert not task.done(), "the worker stopped"
            await asyncio.sleep(0.5)

    assert Counter(r.data["reason"] for r in quarantined) == forge.expected
    assert received == set(forge.valid)
    held = [
        json.loads(Opener("governance", keys, replay_guard=InMemoryReplayGuard())
                   .open_kafka(m.value, m.headers, topic=QUARANTINE).payload)
        for m in await read_all(bootstrap, QUARANTINE)
    ]  # fmt: skip
    assert Counter(h["reason"] for h in held) == forge.expected
    assert all(h["value"] is not None and h["digest"] for h in held)  # nothing lost
    assert sum(h["truncated"] for h in held) == KINDS["one-megabyte"]

    # Every valid event decided for every candidate and delivered exactly once; nothing to
    # the recipient without a key, which is refused and says why.
    decided = [r for r in audit if r.kind is AuditKind.DECIDED]
    assert {r.event_id for r in decided} == set(forge.valid)
    refused = [r for r in decided if r.party == REVOKED]
    assert len(refused) == len(forge.valid)
    assert {(r.data["outcome"], r.data["reason"]) for r in refused} == {
        ("not_shared", "recipient-key-unavailable")
    }
    assert await read_all(bootstrap, deliver(REVOKED)) == []
    coord = Counter(m.key.decode() for m in await read_all(bootstrap, deliver("sandwell-coord")))
    assert coord == Counter(forge.valid)
    verify_chains(audit, keys)
