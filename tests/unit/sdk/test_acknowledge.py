"""A recipient's 'opened' acknowledgement carries identifiers only: it lands in the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.errors import UsageError
from broker.keys import FileKeyStore
from broker.sdk import Subscriber

EVENT = "0b7f5a54-8f0c-4d1e-9a53-3f5c2f4b1e0a"


@pytest.mark.parametrize(
    ("event_id", "by", "purpose", "named"),
    [
        (EVENT, "Jane Smith about Amy", "early_help", "by"),
        (EVENT, "hub-a/duty-1", "seen Amy today", "purpose"),
        ("Amy Smith dob 2016-03-02 told teacher", "hub-a/duty-1", "early_help", "event_id"),
    ],
)
async def test_free_text_in_an_acknowledgement_is_refused_before_anything_is_sent(
    event_id: str, by: str, purpose: str, named: str, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("hub-a", "worker"):
        keys.ensure_party(party, kem=KemSuite.X25519)
    sub = Subscriber(
        "hub-a", keys, KafkaSettings(bootstrap="127.0.0.1:1"), "hub-a.g",
        envelope=EnvelopeSettings(kem=KemSuite.X25519),
    )  # fmt: skip  # never started: nothing reaches Kafka
    with pytest.raises(UsageError) as err:
        await sub.acknowledge(event_id, by=by, purpose=purpose)
    assert str(err.value).startswith(f"{named}: an identifier")
    assert "Amy" not in str(err.value)


@pytest.mark.parametrize("by", ["9997672380", "943-476-5919", "hub-a/07700.900123"])
async def test_an_nhs_or_telephone_number_as_who_opened_is_refused_before_anything_is_sent(
    by: str, tmp_path: Path
) -> None:
    """The audit log names who opened a record in every child's SAR: never a number there."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("hub-a", "worker"):
        keys.ensure_party(party, kem=KemSuite.X25519)
    sub = Subscriber(
        "hub-a", keys, KafkaSettings(bootstrap="127.0.0.1:1"), "hub-a.g",
        envelope=EnvelopeSettings(kem=KemSuite.X25519),
    )  # fmt: skip  # never started: nothing reaches Kafka
    with pytest.raises(UsageError) as err:
        await sub.acknowledge(EVENT, by=by, purpose="early_help")
    assert str(err.value).startswith("by: a staff or system id, never an NHS or telephone")
    assert by not in str(err.value)


async def test_a_telephone_number_in_the_purpose_is_refused_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """A child's SAR shows the purpose beside the opening: never a number there either."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in ("hub-a", "worker"):
        keys.ensure_party(party, kem=KemSuite.X25519)
    sub = Subscriber(
        "hub-a", keys, KafkaSettings(bootstrap="127.0.0.1:1"), "hub-a.g",
        envelope=EnvelopeSettings(kem=KemSuite.X25519),
    )  # fmt: skip  # never started: nothing reaches Kafka
    with pytest.raises(UsageError) as err:
        await sub.acknowledge(EVENT, by="duty-1", purpose="call_mum_07700900123")
    assert str(err.value).startswith("purpose: the purpose the record was shared for, never")
    assert "900123" not in str(err.value)
