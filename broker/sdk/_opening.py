"""One delivery record opened for a started subscriber (broker.sdk._subscriber): authenticated
as the broker's, read by its payload schema, and admitted by the replay memory
(broker.sdk._replay). Kept apart so that a record read from Kafka, one tried again from the
parked records and one only looked at (broker.sdk._keyholds) are judged by the same steps."""

from __future__ import annotations

from typing import TypeVar

from broker.envelope import Opener
from broker.errors import (
    BadSignature,
    MalformedEnvelope,
    ReplayDetected,
    UnsupportedVersion,
    UsageError,
)
from broker.events import Delivery, WithdrawalNotice
from broker.kafka import Message
from broker.principals import Principal
from broker.sdk._parked import ParkedRecord
from broker.sdk._replay import SqliteReplayMemory
from broker.topics import SCHEMA_NOTICE, SCHEMA_SHARED

__all__ = ["GuardedByMemory", "open_record", "require_started"]

_T = TypeVar("_T")


class GuardedByMemory:
    """The Opener's replay guard, standing aside: whether an event id seen before is a replay
    depends on where the record was found (at its first, uncommitted position it is a
    redelivery), which the Opener is not told. The subscriber asks its replay memory as soon
    as the Opener has authenticated the record."""

    def first_sighting(self, event_id: str) -> bool:  # noqa: ARG002  # the Protocol's signature
        return True


def open_record(
    opener: Opener,
    msg: Message | ParkedRecord,
    *,
    topic: str,
    memory: SqliteReplayMemory | None,
    look_only: bool,
) -> Delivery | WithdrawalNotice:
    """``msg`` opened, or the ``EnvelopeError`` (``ReplayDetected`` included) or
    ``ValidationError`` that refuses it; ``look_only`` records no sighting."""
    if msg.value is None:
        raise MalformedEnvelope
    opened = opener.open_kafka(msg.value, msg.headers, topic=topic)
    if opened.sender != Principal.WORKER:
        # Only the broker seals to recipients; checked before the memory, so a record
        # another party sealed cannot take up an event id the broker's delivery needs.
        raise BadSignature
    message: Delivery | WithdrawalNotice
    if opened.schema == SCHEMA_SHARED:
        message = Delivery.model_validate_json(opened.payload)
        # Agencies choose their own event ids, so two may send one id: the delivery is
        # named by the agency too, as the broker signed it in the view.
        origin = message.view.get("sender")
        sender = origin if isinstance(origin, str) else ""  # not known: any sender's
    elif opened.schema == SCHEMA_NOTICE:
        message = WithdrawalNotice.model_validate_json(opened.payload)
        sender = str(Principal.WORKER)  # the broker's own id, no agency's
    else:
        raise UnsupportedVersion  # a payload schema this SDK does not know
    # Authentic and the broker's, so its ids can be trusted; whether it is a replay
    # depends on where it was found. The sighting is in the file before it is yielded.
    memory = require_started(memory)
    admit = memory.would_admit if look_only else memory.admit
    if not admit(
        opened.event_id, topic=msg.topic, partition=msg.partition, offset=msg.offset,
        parked=isinstance(msg, ParkedRecord), sender=sender,
    ):  # fmt: skip
        raise ReplayDetected
    return message


def require_started(client: _T | None) -> _T:
    """``client`` (the subscriber's consumer or replay memory), which ``start`` made."""
    if client is None:
        raise UsageError("the subscriber is not started (use 'async with Subscriber(...)')")
    return client
