"""What the desk's pages need, passed in once; the seams are Protocols, so tests swap them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from broker.config import DeskSettings, SchoolCalendar
from broker.desk._flags_fresh import FlagsFreshness
from broker.desk._ingest_held import DeliveriesHeld
from broker.desk._probes import KafkaContact
from broker.desk._store import DeskStore
from broker.webauth import UserFile

__all__ = ["Acknowledger", "DeskDeps", "EventPublisher"]


class Acknowledger(Protocol):
    """Sends person-level access acknowledgements to ``accord.access`` (the SDK subscriber):
    all of a page's together, within the desk's ``send_timeout_seconds``, else
    ``TransportError`` and none is ever recorded (a transaction never committed); or, if the
    limit passed while Kafka was committing, ``SendUnconfirmed``: they may be recorded."""

    async def acknowledge_all(self, event_ids: Sequence[str], *, by: str, purpose: str) -> None: ...


class EventPublisher(Protocol):
    """Publishes one of the party's own events through the broker (the SDK publisher): within
    the desk's ``send_timeout_seconds``, else ``TransportError`` and it is never sent; or
    ``SendUnconfirmed`` (the limit passed while Kafka was committing): it may have been
    sent, and only a publish under the same event id is safe (broker.desk._resend)."""

    async def publish(self, event: Mapping[str, Any]) -> Any: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DeskDeps:
    party: str
    party_name: str
    kind: str  # broker.policy Party.kind: coordinating_team, hub or school
    store: DeskStore
    users: UserFile
    acks: Acknowledger
    linkage_key: bytes
    device_key: bytes  # known-device cookies' (broker.webauth.device_key)
    settings: DeskSettings
    schools: SchoolCalendar = field(default_factory=SchoolCalendar)
    publisher: EventPublisher | None = None  # None: this party publishes nothing
    # Party ids to names, for showing who sent a record.
    party_names: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # A co-ordinating team's: how far its flag service has read (None: not asked here).
    flags_freshness: FlagsFreshness | None = None
    # Whether reading deliveries is held on a record the keystore cannot open (the banner).
    deliveries_held: DeliveriesHeld | None = None
    # When Kafka last answered the desk, and since when it has not (the pages' banner; None:
    # not known here).
    kafka_contact: KafkaContact | None = None
    # Whether any agreement may send the party an NHS number (._received): a school's Records
    # page offers no search by one otherwise.
    nhs_numbers_received: bool = True
