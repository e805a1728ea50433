"""The ids a publisher sends under are the caller's, as written: never rewritten, and the
ones to send again under after an unconfirmed send."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.envelope import read_header
from broker.errors import EventInvalid, SendUnconfirmed
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies

AT = datetime(2026, 11, 22, 8, tzinfo=UTC)
X25519 = EnvelopeSettings(kem=KemSuite.X25519)  # the keystore's KEM
ID = "5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001"


class FakeProducer:
    """Takes every record (``answers``), or never answers (Kafka down, aiokafka retrying)."""

    def __init__(self, answers: bool, sent: list[tuple[str, bytes, bytes]]) -> None:
        self.answers = answers
        self.sent = sent

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, *, key: bytes, **_: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.answers:
            future.set_result(SimpleNamespace(topic=topic, partition=0, offset=len(self.sent)))
        return future


class FakeKafka:
    bootstrap = "127.0.0.1:1"
    principal = None
    settings = KafkaSettings(bootstrap=bootstrap)

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, bytes, bytes]] = []

    def producer(self, client_id: str, **_: Any) -> FakeProducer:  # noqa: ARG002  # the seam's
        return FakeProducer(self.answers.pop(0), self.sent)


def _publisher(tmp_path: Path, kafka: FakeKafka, timeout: float = 5.0) -> Publisher:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"], kem=KemSuite.X25519)
    settings = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT")
    publisher = Publisher(
        "wmp", keys, settings, envelope=X25519, clock=lambda: AT, send_timeout=timeout
    )
    publisher._producer._kafka = kafka  # type: ignore[assignment]  # no Kafka: a fake one
    return publisher


def _event(**changes: Any) -> dict[str, Any]:
    fam = SyntheticFamilies(seed=5, today=date(2026, 11, 22))
    event = fam.event("police.domestic_incident", "wmp", subjects=[fam.subject("child")],
                      occurred_at=datetime(2026, 11, 21, 22, 40, tzinfo=UTC))  # fmt: skip
    return {**json.loads(json.dumps(event, default=str)), **changes}


@pytest.mark.parametrize("spelling", [ID.upper(), ID.replace("-", ""), "{" + ID + "}"])
async def test_an_event_id_in_another_spelling_is_refused_not_rewritten(
    tmp_path: Path, spelling: str
) -> None:
    kafka = FakeKafka(True)
    async with _publisher(tmp_path, kafka) as pub:
        with pytest.raises(EventInvalid) as err:
            await pub.publish(_event(event_id=spelling))
    assert [field for field, _ in err.value.problems] == ["event_id"]
    assert kafka.sent == []


async def test_the_receipt_envelope_and_key_carry_the_callers_event_id_as_written(
    tmp_path: Path,
) -> None:
    kafka = FakeKafka(True)
    async with _publisher(tmp_path, kafka) as pub:
        receipt = await pub.publish(_event(event_id=ID))
    [(topic, key, value)] = kafka.sent
    assert (receipt.event_id, key, read_header(value).event_id) == (ID, ID.encode(), ID)
    assert topic == receipt.topic == "accord.ingress.wmp"


CONSENT_RECORD = {
    "subject": {"nhs_number": "9997877896"}, "state": "withdrawn", "purposes": ["*"],
    "recipients": ["kind:hub"], "recorded_by": "wmp", "recorded_at": "2026-11-01T15:30:00Z",
}  # fmt: skip


async def test_a_consent_record_goes_under_the_record_id_the_caller_gives(tmp_path: Path) -> None:
    kafka = FakeKafka(True)
    async with _publisher(tmp_path, kafka) as pub:
        receipt = await pub.publish_consent(CONSENT_RECORD, record_id=ID)
    [(topic, key, value)] = kafka.sent
    assert (receipt.event_id, key, read_header(value).event_id) == (ID, ID.encode(), ID)
    assert topic == receipt.topic == "accord.consent"


async def test_without_a_record_id_each_consent_record_gets_a_fresh_canonical_uuid(
    tmp_path: Path,
) -> None:
    async with _publisher(tmp_path, FakeKafka(True)) as pub:
        first = await pub.publish_consent(CONSENT_RECORD)
        second = await pub.publish_consent(CONSENT_RECORD)
    assert first.event_id != second.event_id
    assert str(uuid.UUID(first.event_id)) == first.event_id


@pytest.mark.parametrize("record_id", [ID.upper(), "consent-1", ""])
async def test_a_record_id_that_is_not_a_canonical_uuid_is_refused_before_sending(
    tmp_path: Path, record_id: str
) -> None:
    kafka = FakeKafka(True)
    async with _publisher(tmp_path, kafka) as pub:
        with pytest.raises(EventInvalid) as err:
            await pub.publish_consent(CONSENT_RECORD, record_id=record_id)
    assert [field for field, _ in err.value.problems] == ["record_id"]
    assert kafka.sent == []


async def test_an_unconfirmed_consent_record_is_sent_again_under_the_id_the_error_names(
    tmp_path: Path,
) -> None:
    """The broker files a record id once: sent again under it, a copy that Kafka did take
    after all is refused as a replay, not filed and audited twice."""
    kafka = FakeKafka(False, True)  # the first producer never hears back; the next does
    async with _publisher(tmp_path, kafka, timeout=0.2) as pub:
        with pytest.raises(SendUnconfirmed) as err:
            await pub.publish_consent(CONSENT_RECORD)
        [record_id] = err.value.event_ids
        receipt = await pub.publish_consent(CONSENT_RECORD, record_id=record_id)
    assert receipt.event_id == record_id
    assert [read_header(value).event_id for _, _, value in kafka.sent] == [record_id] * 2


async def test_an_unconfirmed_batch_names_every_event_id_in_it(tmp_path: Path) -> None:
    events = [_event(event_id=str(uuid.uuid4())) for _ in range(3)]
    async with _publisher(tmp_path, FakeKafka(False), timeout=0.2) as pub:
        with pytest.raises(SendUnconfirmed) as err:
            await pub.publish_many(events)
    assert err.value.event_ids == tuple(e["event_id"] for e in events)
