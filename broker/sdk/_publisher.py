"""The agency side: validate, seal to the worker, produce to the agency's own ingress topic."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import structlog

from broker._canonical import canonical_json
from broker.config import EnvelopeSettings, KafkaSettings
from broker.envelope import Sealer
from broker.errors import EventInvalid, KeyStoreError, UsageError
from broker.events import (
    ConsentRecord,
    ContactEvent,
    Safeguarding,
    is_canonical_uuid,
    parse_consent,
    parse_event,
)
from broker.kafka import KafkaClients
from broker.keys import KeyStore
from broker.principals import Principal
from broker.sdk._bounded import DEFAULT_SEND_TIMEOUT, BoundedProducer, Outgoing
from broker.sdk._client import AsyncClient, kafka_clients, utcnow
from broker.sdk._keycheck import require_sealing
from broker.topics import CONSENT, SCHEMA_CONSENT, SCHEMA_EVENT, ingress

_CONSENT = "consent record"  # what EventInvalid says failed: "invalid consent record: ..."
_NOT_CANONICAL = "must be a UUID in lowercase hyphenated form (8-4-4-4-12 hex digits)"

#: Problems a refused batch lists; the others are counted, not listed.
MAX_PROBLEMS = 20

log = structlog.get_logger("accord.sdk")

#: The warning for a concern flagged with an empty (blank, invisible) justification: a valid
#: event, decided as the brief says with no override, which the sender must not miss.
#: The need level at which the override applies with or without a concern (BRIEF section 4).
OVERRIDE_LEVEL: Final = 4

UNJUSTIFIED_CONCERN: Final = (
    "safeguarding.concern",
    "is true but its justification is empty: it will not override consent "
    "(docs/policy-language.md)",
)


def capped(exc: EventInvalid, *, what: str | None = None) -> EventInvalid:
    """``exc`` with at most ``MAX_PROBLEMS`` listed and the others added to its ``more``.

    Every refusal that names problems passes here (one event, one consent record, a batch,
    the gateway's 422): a single event with thousands of unknown keys would otherwise be one
    huge message, and one huge answer.
    """
    over = max(0, len(exc.problems) - MAX_PROBLEMS)
    if not over and what in (None, exc.what):
        return exc
    return EventInvalid(exc.problems[:MAX_PROBLEMS], what=what or exc.what, more=exc.more + over)


def _at(index: int, path: str) -> str:
    """A problem's path within a batch: ``[1].need_level``, or ``[1]`` for the whole event."""
    return f"[{index}]" if path == "(event)" else f"[{index}].{path}"


_Item = TypeVar("_Item")


def validate_batch(
    events: Iterable[_Item], validate: Callable[[_Item], ContactEvent]
) -> list[ContactEvent]:
    """Each event of a batch validated by ``validate``, or one ``EventInvalid`` for the batch.

    Every problem is named by its event's place (``[1].need_level``, or ``[1]`` alone for a
    problem of the whole event), an event id given again by both places (``[3].event_id:
    the same as [0]``), in the batch's order; the first ``MAX_PROBLEMS`` are listed and the
    rest counted (``EventInvalid.more``). ``Publisher.publish_many`` and the gateway's batch
    both check with it, so the two name a batch's problems alike.
    """
    parsed: list[ContactEvent] = []
    problems: list[tuple[str, str]] = []
    unlisted = 0  # problems an event's own EventInvalid counted but did not list
    # The broker takes an event id once; a second would be quarantined as a replay. Each
    # repeat is named by its place, and the first with that id (ids are random UUIDs).
    first: dict[str, int] = {}
    for i, event in enumerate(events):
        try:
            e = validate(event)
        except EventInvalid as exc:
            problems.extend((_at(i, path), message) for path, message in exc.problems)
            unlisted += exc.more
            continue
        parsed.append(e)
        if (at := first.setdefault(str(e.event_id), i)) != i:
            problems.append((f"[{i}].event_id", f"the same as [{at}]"))
    if problems:
        # Bounded: a whole export mapped wrongly would otherwise be one huge message.
        raise capped(EventInvalid(problems, more=unlisted))
    return parsed


def _sender_of(event: object) -> str | None:
    """The ``sender`` an event that failed validation names, if it is readable text."""
    data: object = event
    if isinstance(event, bytes | str):
        try:
            data = json.loads(event)
        except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is one), or
            return None  # nested past Python's limit: validation said so
    sender = data.get("sender") if isinstance(data, Mapping) else None
    return sender if isinstance(sender, str) else None


#: What ``publish`` takes: a validated event, a dict, or its JSON (bytes; text is read too).
_EventInput = ContactEvent | Mapping[str, Any] | bytes


def concern_warnings(
    event: _EventInput | Safeguarding,
    *,
    need_level: int | None = None,
    validate: Callable[[Mapping[str, Any] | bytes], ContactEvent],
) -> list[tuple[str, str]]:
    """What is valid in ``event`` but likely not what its sender meant, as ``(field,
    message)`` pairs naming fields, never values: a safeguarding concern whose justification
    is empty, blank or invisible, which will not override consent, below need level 4
    (``need_level``, given with a bare ``Safeguarding``), where the override applies anyway.
    ``event`` is anything ``publish`` takes: a dict or JSON is first checked by ``validate``
    (``EventInvalid`` when it is invalid). ``publish`` and ``publish_many`` log each warning;
    ``accord publish`` prints it, and the gateway's 202 lists it."""
    if isinstance(event, Safeguarding):
        sg = event
    else:
        parsed = event if isinstance(event, ContactEvent) else validate(event)
        sg, need_level = parsed.safeguarding, parsed.need_level
    return [UNJUSTIFIED_CONCERN] if sg.unjustified and need_level != OVERRIDE_LEVEL else []


class Warnings(Protocol):
    """``Publisher.warnings``: ``concern_warnings`` with the validation of ``publish``."""

    def __call__(
        self, event: _EventInput | Safeguarding, *, need_level: int | None = None
    ) -> list[tuple[str, str]]: ...


def _wall_clock_validate(event: Mapping[str, Any] | bytes) -> ContactEvent:
    try:
        return parse_event(event, now=utcnow())
    except EventInvalid as exc:
        raise capped(exc) from None


class _WarningsOf:
    """``warnings`` on the class and on an instance alike (the gateway calls it on the class,
    docs/sdk.md on either). A dict or JSON is validated as ``publish`` validates it: on a
    publisher by its own ``validate`` (its clock, its party); on the class, with the wall
    clock and no party to hold ``sender`` to."""

    def __get__(self, publisher: Publisher | None, owner: type[Publisher]) -> Warnings:
        validate = _wall_clock_validate if publisher is None else publisher.validate
        return functools.partial(concern_warnings, validate=validate)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where Kafka stored a published record."""

    event_id: str
    topic: str
    partition: int
    offset: int


class Publisher(AsyncClient):
    """Publishes ``party``'s contact events and consent records, sealed to the broker.

    Use as an async context manager. Every event is validated before anything leaves the
    process; an invalid one raises ``EventInvalid`` and nothing is sent. A keystore without
    the party's live signing key, or without the broker's live encryption key (no key
    directory imported, or a stale one), is refused here with a ``KeyStoreError``.

    Each ``publish``, ``publish_many`` and ``publish_consent`` call is sent within
    ``send_timeout`` seconds or not at all (``TransportError``; broker.sdk._bounded). With
    ``transactional_id`` a call given up on writes nothing, unless the limit passed while
    Kafka was committing it; that case, and one without a transactional id given up on
    after its records were handed over, is ``SendUnconfirmed``: it is not sent again, but
    Kafka may have it already; publish again under the same event id.
    """

    def __init__(
        self,
        party: str,
        keystore: KeyStore,
        kafka: KafkaClients | KafkaSettings,
        *,
        envelope: EnvelopeSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        transactional_id: str | None = None,
    ) -> None:
        if party not in keystore.private_parties():
            # The broker accepts only what the party itself signed.
            raise KeyStoreError(f"this keystore holds no private key for {party}")
        self.party = party
        self.topic = ingress(party)
        envelope = envelope or EnvelopeSettings()
        self._sealer = Sealer(party, keystore, envelope)
        require_sealing(party, self._sealer, keystore, envelope.kem)
        self._clock = clock
        self._producer = BoundedProducer(
            kafka_clients(kafka), f"accord-publisher-{party}", timeout=send_timeout,
            transactional_id=transactional_id,
        )  # fmt: skip

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def validate(self, event: ContactEvent | Mapping[str, Any] | bytes) -> ContactEvent:
        """Validate an event as the broker will, and check it is this party's to send."""
        wrong_sender = ("sender", f"must be {self.party!r}, the publishing party")
        try:
            parsed = (
                event if isinstance(event, ContactEvent) else parse_event(event, now=self._clock())
            )
        except EventInvalid as exc:
            # Every problem is named in one go (docs/sdk.md): a sender that is readable but
            # not this party is one, and would otherwise surface only once the rest is fixed.
            sender = _sender_of(event)
            if sender is not None and sender != self.party and "sender" not in dict(exc.problems):
                exc = EventInvalid([wrong_sender, *exc.problems], what=exc.what, more=exc.more)
            raise capped(exc) from None
        if parsed.sender != self.party:
            raise EventInvalid([wrong_sender])
        return parsed

    #: ``Publisher.warnings(event)`` or ``publisher.warnings(event)``: see ``concern_warnings``.
    warnings: Final = _WarningsOf()

    async def publish(self, event: ContactEvent | Mapping[str, Any] | bytes) -> Receipt:
        """Validate, seal and send one event; returns once Kafka has acknowledged it."""
        # Validated here, so a single event's problems are named without a batch index.
        return (await self.publish_many([self.validate(event)]))[0]

    async def publish_many(
        self, events: Iterable[ContactEvent | Mapping[str, Any] | bytes]
    ) -> list[Receipt]:
        """Validate all, then send all; every receipt is returned in input order.

        Validation happens first for the whole batch, so an invalid event sends nothing; nor
        does an event id given twice (``[3].event_id: the same as [0]``). Every problem of
        the batch is named by its event's place (``[1].need_level: ...``), the first
        ``MAX_PROBLEMS`` listed and the rest counted (``EventInvalid.more``).
        """
        parsed = validate_batch(events, self.validate)
        metas = await self._send(self.topic, [self._sealed_event(e) for e in parsed])
        for e in parsed:
            if self.warnings(e):
                # The event id only: the justification is free text about a family.
                log.warning("event_concern_unjustified", event_id=str(e.event_id))
        return [
            Receipt(str(e.event_id), m.topic, m.partition, m.offset)
            for e, m in zip(parsed, metas, strict=True)
        ]

    def _sealed_event(self, event: ContactEvent) -> Outgoing:
        eid = str(event.event_id)
        sealed = self._sealer.seal(
            canonical_json(event.to_json_dict()),
            event_id=eid,
            recipient=Principal.WORKER,
            schema=SCHEMA_EVENT,
            topic=self.topic,
        )
        # The key is the random event id: it spreads load and reveals nothing.
        return Outgoing(self.topic, eid.encode("ascii"), sealed.value, list(sealed.headers))

    async def publish_consent(
        self, record: ConsentRecord | Mapping[str, Any], *, record_id: str | None = None
    ) -> Receipt:
        """Send a consent record (given, refused or withdrawn) to ``accord.consent``.

        The record's id (the receipt's ``event_id``) is ``record_id``, else a new UUID. The
        broker files a record id once: after ``SendUnconfirmed`` send the same record again
        with ``record_id`` set to the error's ``event_ids[0]``, never afresh (a new id
        would be filed, and audited, a second time).
        """
        try:
            parsed = (
                record
                if isinstance(record, ConsentRecord)
                else parse_consent(record, now=self._clock())
            )
        except EventInvalid as exc:
            raise capped(exc, what=_CONSENT) from None
        if parsed.recorded_by != self.party:
            # The worker takes a consent record only from the party it names as recorder.
            raise EventInvalid(
                [("recorded_by", f"must be {self.party!r}, the publishing party")], what=_CONSENT
            )
        if record_id is None:
            record_id = str(uuid.uuid4())
        elif not is_canonical_uuid(record_id):
            # Refused, not rewritten, as an event id is (docs/sdk.md).
            raise EventInvalid([("record_id", _NOT_CANONICAL)], what=_CONSENT)
        sealed = self._sealer.seal(
            canonical_json(parsed.model_dump(mode="json")),
            event_id=record_id,
            recipient=Principal.WORKER,
            schema=SCHEMA_CONSENT,
            topic=CONSENT,
        )
        [meta] = await self._send(
            CONSENT,
            [Outgoing(CONSENT, record_id.encode("ascii"), sealed.value, list(sealed.headers))],
        )
        return Receipt(record_id, meta.topic, meta.partition, meta.offset)

    async def _send(self, topic: str, records: list[Outgoing]) -> list[Any]:
        if not self._producer.started:
            raise UsageError("the publisher is not started (use 'async with Publisher(...)')")
        if not records:
            return []
        return await self._producer.send(f"publishing to {topic}", records)
