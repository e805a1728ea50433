"""The SDK through real Kafka: nothing readable on the wire, only the recipient opens."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest

from broker._canonical import canonical_json
from broker.envelope import Opener, SealedRecord, Sealer
from broker.errors import KeyRejected, WrongRecipient
from broker.keys import FileKeyStore
from broker.sdk import AccessAck, Delivery, Publisher, Subscriber
from broker.synthetic import SyntheticFamilies
from broker.topics import ACCESS, SCHEMA_SHARED, deliver, ingress
from tests.kafka_helpers import clients, read_to_end

pytestmark = pytest.mark.usefixtures("sdk_topics")


async def _raw(bootstrap: str, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    return [(m.value or b"", list(m.headers)) for m in await read_to_end(bootstrap, topic)]


def _delivery(event_id: str, recipient: str) -> Delivery:
    return Delivery(
        event_id=event_id,
        recipient=recipient,
        outcome="shared",
        clauses=("contacts-to-hub",),
        agreements=("sandwell-early-help",),
        purpose="early_help",
        lawful_basis={"article6": "public_task"},
        policy_version="test",
        decided_at=datetime.now(UTC),
        view={"subjects": [{"role": "child", "subject.dob": "5-10"}]},
    )


def seal_delivery(keystore: FileKeyStore, delivery: Delivery) -> SealedRecord:
    """Seal a delivery as the worker would, for its recipient's topic."""
    return Sealer("worker", keystore).seal(
        canonical_json(delivery.model_dump(mode="json")),
        event_id=delivery.event_id,
        recipient=delivery.recipient,
        schema=SCHEMA_SHARED,
        topic=deliver(delivery.recipient),
    )


async def produce(
    bootstrap: str, topic: str, *records: tuple[bytes, list[tuple[str, bytes]]]
) -> None:
    producer = clients(bootstrap).producer("test-roundtrip")
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, headers=headers)
    finally:
        await producer.stop()


async def test_published_events_carry_no_personal_data_and_open_for_the_worker(
    kafka_bootstrap: str, keystore: FileKeyStore
) -> None:
    families = SyntheticFamilies(seed=7)
    events = [families.event(sender="wmp") for _ in range(20)]
    for s in (s for e in events for s in e["subjects"]):
        # Grepped for in ciphertext below: a three-letter Faker name turns up there by chance.
        s["given_name"], s["family_name"] = "Xo" + token_hex(3), "Qz" + token_hex(4)
    async with Publisher("wmp", keystore, clients(kafka_bootstrap)) as pub:
        receipts = await pub.publish_many(events)
    assert [r.event_id for r in receipts] == [e["event_id"] for e in events]

    raw = await _raw(kafka_bootstrap, ingress("wmp"))
    blob = b"".join(v + b"".join(h for _, h in hs) for v, hs in raw)
    seeded = [
        s[k]
        for e in events
        for s in e["subjects"]
        for k in ("given_name", "family_name", "nhs_number", "postcode", "address")
    ] + [e["summary"] for e in events]
    leaked = [value for value in seeded if value.encode() in blob]
    assert leaked == []

    worker = Opener("worker", keystore)
    opened = {}
    for value, headers in raw:
        rec = worker.open_kafka(value, headers, topic=ingress("wmp"))
        opened[rec.event_id] = json.loads(rec.payload)
    for event in events:
        assert (
            opened[event["event_id"]]["subjects"][0]["nhs_number"]
            == event["subjects"][0]["nhs_number"]
        )


async def test_a_recipient_opens_its_delivery_and_its_access_is_acknowledged(
    kafka_bootstrap: str, keystore: FileKeyStore, tmp_path: Path
) -> None:
    delivery = _delivery("0b7c4a1e-5f3d-4c2a-9e8b-000000000001", "hub-a")
    sealed = seal_delivery(keystore, delivery)
    await produce(kafka_bootstrap, deliver("hub-a"), (sealed.value, sealed.headers))

    memory = tmp_path / "replay.sqlite3"  # this run's: the ids above are the same every run
    async with Subscriber(
        "hub-a", keystore, clients(kafka_bootstrap), "hub-a.test", replay_memory=memory
    ) as sub:
        # Other tests may deliver to hub-a too; this one looks for its own record. A poll can
        # come back empty while the subscriber is still joining its group: ask a few times.
        mine: list[Any] = []
        for _ in range(5):
            records = await sub.poll(2.0)
            mine += [r for r in records if r.message.event_id == delivery.event_id]  # type: ignore[union-attr]
            if mine:
                break
        assert [r.message for r in mine] == [delivery]
        await mine[0].opened(by="practitioner-17", purpose="early_help")

    # Another hub's key cannot open it.
    with pytest.raises(WrongRecipient):
        Opener("hub-b", keystore).open_kafka(sealed.value, sealed.headers)

    acks = await _raw(kafka_bootstrap, ACCESS)
    got = []
    for value, headers in acks:
        with contextlib.suppress(KeyRejected):  # acks other tests sealed to their own worker
            opened = Opener("worker", keystore).open_kafka(value, headers, topic=ACCESS)
            got.append(AccessAck.model_validate_json(opened.payload))
    mine_acks = [a for a in got if a.event_id == delivery.event_id]  # other tests ack too
    assert [(a.recipient, a.by) for a in mine_acks] == [("hub-a", "practitioner-17")]


async def test_records_a_subscriber_cannot_open_are_reported_not_dropped(
    kafka_bootstrap: str, keystore: FileKeyStore, tmp_path: Path
) -> None:
    good = _delivery("0b7c4a1e-5f3d-4c2a-9e8b-000000000003", "hub-b")
    sealed = seal_delivery(keystore, good)
    record = (sealed.value, sealed.headers)
    await produce(kafka_bootstrap, deliver("hub-b"), (b"\x00garbage", []), record, record)

    memory = tmp_path / "replay.sqlite3"
    async with Subscriber(
        "hub-b", keystore, clients(kafka_bootstrap), "hub-b.test", replay_memory=memory
    ) as sub:
        records: list[object] = []
        for _ in range(5):
            records += await sub.poll(1.0)
            if len(records) + len(sub.unopenable) >= 3:
                break
    assert [r.message for r in records] == [good]  # type: ignore[attr-defined]
    assert [u.reason for u in sub.unopenable] == ["malformed", "replay"]
