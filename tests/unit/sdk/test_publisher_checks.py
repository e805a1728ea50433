"""What the publisher refuses before anything is sent (no Kafka needed: nothing is)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.errors import EventInvalid
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies

AT = datetime(2026, 11, 22, 8, tzinfo=UTC)
X25519 = EnvelopeSettings(kem=KemSuite.X25519)  # the keystore's KEM


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party("wmp", kem=KemSuite.X25519)
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"], kem=KemSuite.X25519)
    kafka = KafkaSettings(bootstrap="127.0.0.1:1", security_protocol="PLAINTEXT")
    return Publisher("wmp", keys, kafka, envelope=X25519, clock=lambda: AT)


def _consent(recorded_by: str) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": "9997877896"}, "state": "withdrawn", "purposes": ["*"],
        "recipients": ["kind:hub"], "recorded_by": recorded_by,
        "recorded_at": "2026-11-01T15:30:00Z",
    }  # fmt: skip


async def test_a_consent_record_another_party_recorded_is_refused_before_sending(
    publisher: Publisher,
) -> None:
    """The worker would quarantine it (sender-mismatch): the withdrawal would never apply."""
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_consent(_consent("sandwell-coord"))
    assert err.value.problems == [("recorded_by", "must be 'wmp', the publishing party")]
    assert str(err.value).startswith("invalid consent record: ")


async def test_an_invalid_consent_record_is_called_one(publisher: Publisher) -> None:
    """Not "invalid event": an integrator's log must say which kind of record failed."""
    for record, record_id in (({**_consent("wmp"), "state": "maybe"}, None),
                              (_consent("wmp"), "NOT-A-UUID")):  # fmt: skip
        with pytest.raises(EventInvalid, match=r"^invalid consent record: "):
            await publisher.publish_consent(record, record_id=record_id)


async def test_a_batch_that_repeats_an_event_id_sends_nothing(publisher: Publisher) -> None:
    fam = SyntheticFamilies(seed=5, today=date(2026, 11, 22))
    event = fam.event("police.domestic_incident", "wmp", subjects=[fam.subject("child")],
                      occurred_at=datetime(2026, 11, 21, 22, 40, tzinfo=UTC))  # fmt: skip
    event = json.loads(json.dumps(event, default=str))
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_many([event, {**event, "summary": "corrected"}])
    assert err.value.problems == [("[1].event_id", "the same as [0]")]


async def test_a_child_born_after_the_event_is_refused_before_sending(
    publisher: Publisher,
) -> None:
    """As the worker would refuse it (invalid-event): born after occurred_at, named not quoted."""
    fam = SyntheticFamilies(seed=5, today=date(2026, 11, 22))
    occurred = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
    child = fam.subject("child", age=0, on=occurred.date())
    event = fam.event("police.domestic_incident", "wmp", subjects=[child], occurred_at=occurred)
    event["subjects"][0]["dob"] = "2026-11-22"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish(event)
    assert err.value.problems == [
        ("occurred_at", "is before every subject's date of birth"),
        ("subjects[0].dob", "is after occurred_at"),
    ]
    assert "2026-11-22" not in str(err.value)


def _events(n: int) -> list[dict[str, Any]]:
    fam = SyntheticFamilies(seed=5, today=date(2026, 11, 22))
    occurred = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
    return [
        json.loads(json.dumps(
            fam.event("police.domestic_incident", "wmp", subjects=[fam.subject("child")],
                      occurred_at=occurred), default=str))
        for _ in range(n)
    ]  # fmt: skip


async def test_a_batch_names_every_bad_event_by_its_place(publisher: Publisher) -> None:
    """Not only the first, and not unplaced: each problem says which event of the batch."""
    events = _events(3)
    for e in events[1:]:
        e["need_level"] = "3"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_many(events)
    paths = [path for path, _ in err.value.problems]
    assert paths == ["[1].need_level", "[2].need_level"]
    assert str(err.value).startswith("invalid event: [1].need_level: ")
    for e in events:  # personal data is never quoted
        for subject in e["subjects"]:
            for value in subject.values():
                assert str(value) not in str(err.value)


async def test_a_batch_lists_bad_events_and_repeated_ids_in_order(publisher: Publisher) -> None:
    events = _events(3)
    events[0]["need_level"] = "3"
    events[1] = "not an event"  # type: ignore[call-overload]
    events[2]["event_id"] = events[0]["event_id"]  # [0] is invalid: no id of its is taken
    events.append({**events[2]})
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_many(events)
    assert [path for path, _ in err.value.problems] == [
        "[0].need_level", "[1]", "[3].event_id"
    ]  # fmt: skip
    assert err.value.problems[2] == ("[3].event_id", "the same as [2]")


async def test_a_long_bad_batch_lists_its_first_problems_and_counts_the_rest(
    publisher: Publisher,
) -> None:
    events = _events(25)
    for e in events:
        e["need_level"] = "3"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_many(events)
    assert len(err.value.problems) == 20
    assert err.value.problems[-1][0] == "[19].need_level"
    assert err.value.more == 5
    assert str(err.value).endswith("(+22 more)")


async def test_one_event_published_alone_is_named_without_a_place(publisher: Publisher) -> None:
    event = _events(1)[0]
    event["need_level"] = "3"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish(event)
    assert [path for path, _ in err.value.problems] == ["need_level"]


SDK_DOC = (Path(__file__).resolve().parents[3] / "docs" / "sdk.md").read_text()


async def test_a_rule_about_the_whole_event_is_named_by_its_place_alone(
    publisher: Publisher,
) -> None:
    """As docs/sdk.md says: ``[1]``, not ``[1].(event)``, and not only for a non-event."""
    events = _events(2)
    events[1]["outcome"] = "declined"  # outcome belongs to referral outcomes only
    with pytest.raises(EventInvalid) as err:
        await publisher.publish_many(events)
    message = "outcome is only for coordination.referral_outcome events"
    assert err.value.problems == [("[1]", message)]
    assert f"`[4]: {message}`" in " ".join(SDK_DOC.split())


@pytest.mark.parametrize("as_bytes", [False, True])
async def test_a_wrong_sender_is_named_with_the_events_other_problems_in_one_go(
    publisher: Publisher, as_bytes: bool
) -> None:
    """Not only once the rest is fixed: docs/sdk.md promises every problem at once."""
    event = _events(1)[0]
    event["sender"] = "swbh"
    event["subjects"][0]["dob"] = "2030-01-01"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish(json.dumps(event).encode() if as_bytes else event)
    assert err.value.problems == [
        ("sender", "must be 'wmp', the publishing party"),
        ("subjects[0].dob", "is in the future"),
    ]
    with pytest.raises(EventInvalid) as batch:
        await publisher.publish_many([_events(1)[0], event])
    assert [path for path, _ in batch.value.problems] == ["[1].sender", "[1].subjects[0].dob"]


async def test_a_sender_that_is_no_party_id_is_named_once(publisher: Publisher) -> None:
    event = _events(1)[0]
    event["sender"] = "Not A Party"
    event["need_level"] = "3"
    with pytest.raises(EventInvalid) as err:
        await publisher.publish(event)
    assert [path for path, _ in err.value.problems] == ["sender", "need_level"]


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, "[" * 100_000 + "]" * 100_000])
def test_json_nested_past_python_s_limit_is_an_invalid_event_not_a_recursion_error(
    publisher: Publisher, raw: bytes | str
) -> None:
    with pytest.raises(EventInvalid):
        publisher.validate(raw)
