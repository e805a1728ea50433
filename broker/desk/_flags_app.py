"""The flag service: a faust-streaming app over a party's delivery topic (docs/desk.md, "Flags").

Three steps and two tables, all under the party's own Kafka prefix ``accord.desk.<party>.``:

1. ``open_records`` (:mod:`._flags_source`, our own consumer, not faust's: faust mis-tracks
   offsets on a topic written in transactions) reads ``accord.deliver.<party>``, opens each
   record with the party's own key (the envelope ``Opener`` the SDK uses: signature,
   recipient, topic and key checks; only the broker's records count), and sends one message
   per child subject to ``<app id>-bychild`` keyed by child key, so all of a child's records
   meet in one partition. A withdrawal notice goes to every partition of both re-keyed
   topics. A record's offset is committed once all it sent on is acknowledged.
2. the faust agent ``flag`` keeps each child's window state (:data:`broker.desk.ChildState`)
   in the changelog-backed table ``windows``, publishes every child-rule flag raised, as
   ``desk-flag.v1`` JSON keyed by ``flag_id``, on ``accord.desk.<party>.flags``, and, when
   the bundle has household rules and the child a household, sends the household's step its
   message on ``<app id>-byhousehold``, keyed by household (and, when the record places the
   child in another household than before, tells the one it left, keyed by that one).
3. the faust agent ``households`` keeps each household's state in the table ``households``
   and publishes the household rules' flags the same way.

The app id (and the agents' consumer group) is ``accord.desk.<party>.flags``, the first step's
group ``accord.desk.<party>.flags-open``; the topics are created by provisioning, with
``kafka.partitions`` partitions, which the service must use too.

Restarts lose nothing and repeat nothing, at least once underneath (faust-streaming 0.15's
``exactly_once`` picks each send's transaction by the destination partition, not the input
one, so a crash repeated a flag in our test; it is not used). Per record, in this order:

- the flags it raises (and the household's message) are sent and acknowledged by Kafka
  (acks=all) before the child's or household's state is written to the table, so no state
  ever records a flag or a message that is not on its topic;
- faust flushes the producer (flags, table changelog) before it commits input offsets, so a
  committed offset's effects are all in Kafka; records after it are processed again;
- processed again, a record the restored state already holds is ignored (by event id; in a
  household, by event id and child), and a flag whose ``flag_id`` (deterministic) is
  already on the flags topic is not sent again: the service reads the topic's ids once,
  before its first flag.

A withdrawal notice, sent to every partition of both re-keyed topics, takes its records
out of the states of each partition's keys and leaves a marker per id there for a record
that comes after it, kept for longer than Kafka keeps any topic the record could still come
through: 90 days with provisioning's settings, longer (or for good) when the topics' settings
keep records longer, read at start and every ``FlagServiceOptions.withdrawn_recheck`` while
the service runs (:mod:`._withdrawn` has the argument, :mod:`._withdrawn_keep` the reading;
a lowered keep's delay is saved in the datadir, :mod:`._withdrawn_held`).
The ids the states keep as ``gone`` are forgotten after the same keep (:mod:`._gone`).

One flag service per party (no leader election): the ids it read at start are then all that
could be on the topic, and every partition of both tables is this service's.

A child keyed anew when names began to be compared as the broker compares them (2026-12-05)
carries its old key on the re-keyed topic (``legacy``, and ``renamed`` for the household's
step): the child step adopts the window kept under it (``FlagEngine.adopt``; read, never
written: it is another partition's key) and the household step renames it, and a flag whose
id under the old key is on the flags topic is the same flag, not sent again.

No record stops the service: a delivery it cannot open is skipped with its reason
(``flags_record_skipped``), and a re-keyed message the child or household step cannot work
on (a bug, or another version's message) is passed over with an error naming its partition
and offset (``flags_record_failed``, see ``_Service._failed``). Kafka failures do stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog

from broker.config import KafkaSecurity, KafkaSettings
from broker.desk._flag import Flag, flag_id
from broker.desk._flagging import FlagEngine, Placement, window_record
from broker.desk._flags_counts import FlagCounts
from broker.desk._flags_source import DeliveryReader, Opened
from broker.desk._household import HouseholdMessage, left_household
from broker.desk._window import micros
from broker.desk._withdrawn import KEEP, WithdrawnIds, is_marker
from broker.desk._withdrawn_held import FILE as HELD_FILE
from broker.desk._withdrawn_keep import RECHECK, KeepWatch, read_keep
from broker.envelope import Opener
from broker.errors import AccordError, EnvelopeError
from broker.events import Delivery, WithdrawalNotice
from broker.kafka import KafkaClients, bound_tls_close, partition_for, read_retained
from broker.keys import KeyStore
from broker.policy import CompiledFlagRule
from broker.principals import Principal
from broker.topics import SCHEMA_NOTICE, SCHEMA_SHARED, deliver, desk_flags, desk_flags_internal

if TYPE_CHECKING:
    import faust

__all__ = ["FlagServiceOptions", "build_flags_app"]

log = structlog.get_logger("accord.desk.flags")
_MECHANISM: Final = "SCRAM-SHA-512"


class _EveryTime:
    """The Opener's replay guard, standing aside: after a restart the service reads records
    again on purpose, and the engine ignores each one it has seen (by event id)."""

    def first_sighting(self, event_id: str) -> bool:  # noqa: ARG002  # the Protocol's signature
        return True


@dataclass(frozen=True)
class FlagServiceOptions:
    party: str
    kafka: KafkaSettings
    keystore: KeyStore
    rules: tuple[CompiledFlagRule, ...]
    linkage_secret: bytes
    datadir: Path
    partitions: int = 3
    #: How long withdrawn-id markers are kept (None: for good), from the topics' settings
    #: (``withdrawn_keep``, read at start); never less than ``KEEP``.
    withdrawn_keep: timedelta | None = KEEP
    #: How often the running service reads those settings again (``KeepWatch``).
    withdrawn_recheck: timedelta = RECHECK
    #: What it has done, for its /metrics (``flags_ops``).
    counts: FlagCounts = field(default_factory=FlagCounts)


def _credentials(kafka: KafkaSettings) -> faust.SASLCredentials | None:
    import faust  # noqa: PLC0415  # faust loads only in the service, not with broker.desk

    if kafka.security_protocol is KafkaSecurity.PLAINTEXT:
        return None
    if kafka.username is None or kafka.password is None:
        raise AccordError("no Kafka login for the party: give it a client file")
    cafile = str(kafka.ca_file) if kafka.ca_file is not None else None
    return faust.SASLCredentials(
        username=kafka.username,
        password=kafka.password.get_secret_value(),
        ssl_context=ssl.create_default_context(cafile=cafile),
        mechanism=_MECHANISM,
    )


class _Opening:
    """Opens one delivery-topic record: the view, a notice's event ids, or None to skip."""

    def __init__(self, party: str, keystore: KeyStore, counts: FlagCounts) -> None:
        self.party = party
        self.counts = counts
        self.topic = deliver(party)
        self._opener = Opener(party, keystore, replay_guard=_EveryTime())

    def open(self, value: bytes | None, headers: Any) -> Delivery | WithdrawalNotice | None:
        try:
            return self._open(value, headers)
        except _Skip as skip:
            log.warning("flags_record_skipped", party=self.party, reason=str(skip))
            self.counts.skipped += 1
            return None

    def _open(self, value: bytes | None, headers: Any) -> Delivery | WithdrawalNotice:
        if value is None:
            raise _Skip("empty")
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
        try:
            opened = self._opener.open_kafka(value, pairs, topic=self.topic)
        except EnvelopeError as exc:
            raise _Skip(exc.reason) from None
        if opened.sender != Principal.WORKER:
            raise _Skip("not-from-broker")  # only the broker seals to recipients
        try:
            if opened.schema == SCHEMA_SHARED:
                return Delivery.model_validate_json(opened.payload)
            if opened.schema == SCHEMA_NOTICE:
                return WithdrawalNotice.model_validate_json(opened.payload)
        except ValueError:
            raise _Skip("invalid-payload") from None
        raise _Skip("unknown-schema")


class _Skip(Exception):
    """A record the service passes over (logged with the reason, no content)."""


async def published_flag_ids(kafka: KafkaSettings, topic: str) -> set[str]:
    """Every flag id (record key) on the flags topic now, read to its end offsets; a topic
    that does not exist is a :class:`TransportError` at once (not after a metadata timeout)."""
    records = await read_retained(KafkaClients(kafka), [topic])
    return {r.key.decode() for r in records if r.key}


_Topics = tuple[Any, Any, Any]  # by child, by household, flags
_Tables = tuple[Any, Any]  # windows (children), households
# A state without the withdrawn event ids, or None when none was in it.
_Without = Callable[[dict[str, Any], set[str]], dict[str, Any] | None]


class _Service:
    """What the three agents do, given the app's topics and tables."""

    def __init__(
        self,
        opts: FlagServiceOptions,
        topics: _Topics,
        tables: _Tables,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.party = opts.party
        self.kafka = opts.kafka
        self.everyone = list(range(opts.partitions))
        # Both tables' markers share one layout: their keys hash alike. A lowered keep's
        # delay is saved in the datadir, to hold across a restart (._withdrawn_held).
        self.withdrawn = WithdrawnIds(self.everyone, clock, opts.withdrawn_keep,
                                      saved=opts.datadir / HELD_FILE)  # fmt: skip
        # The topics' settings, read again while the service runs (._withdrawn_keep): the
        # app runs ``watch.run`` as a task (build_flags_app).
        self.watch = KeepWatch(lambda: read_keep(opts.kafka, opts.party), self.withdrawn.change,
                               opts.withdrawn_keep, every=opts.withdrawn_recheck,
                               clock=clock)  # fmt: skip
        # The states' gone ids are forgotten after the markers' keep, as it is at the time.
        self.counts = opts.counts
        self.counts.rules(r.id for r in opts.rules)
        self.engine = FlagEngine(opts.rules, opts.party, opts.linkage_secret, clock=clock,
                                 gone_keep=self.withdrawn.keep,
                                 rule_failed=self._rule_failed)  # fmt: skip
        self.opening = _Opening(opts.party, opts.keystore, opts.counts)
        self.bychild, self.byhousehold, self.out = topics
        self.windows, self.households = tables
        self.published: set[str] | None = None
        # Both agents may raise their first flag at once: one read of the topic, not two
        # (a second, older read replacing the first could let a flag be sent twice).
        self._reading = asyncio.Lock()
        self.failed = 0  # re-keyed messages passed over (see _failed)

    async def on_delivery(self, value: bytes | None, headers: Any) -> list[Awaitable[Any]]:
        """Open one delivery-topic record and send it on, re-keyed; what was sent, to await
        before the record's offset is committed."""
        return await self.opened(value, headers).send()

    def opened(self, value: bytes | None, headers: Any) -> Opened:
        """One delivery-topic record opened: its ``occurred_at``, by which the first step
        orders records stamped in one millisecond (``._flags_source``), and its sending on."""
        message = self.opening.open(value, headers)
        occurred = None
        if isinstance(message, Delivery):
            with contextlib.suppress(AccordError):
                occurred = micros(window_record(message.view).occurred_at)
        return Opened(occurred, functools.partial(self._send_on, message))

    async def _send_on(self, message: Delivery | WithdrawalNotice | None) -> list[Awaitable[Any]]:
        if isinstance(message, WithdrawalNotice):
            self.counts.processed += 1
            body = json.dumps({"withdraw": list(message.event_ids)}).encode()
            return [
                await topic.send(key=None, value=body, partition=p)
                for topic in (self.bychild, self.byhousehold)
                for p in self.everyone
            ]
        if isinstance(message, Delivery):
            return await self._route(message.view)
        return []

    async def _route(self, view: dict[str, Any]) -> list[Awaitable[Any]]:
        try:
            record = window_record(view)
        except AccordError:
            log.warning("flags_record_skipped", party=self.party, reason="view-without-basics")
            self.counts.skipped += 1
            return []
        self.counts.processed += 1
        body = {
            "event_id": record.event_id,
            "occurred_at": record.occurred_at.isoformat(),
            "sender": record.sender,
            "type": record.type,
            "need_level": record.need_level,
            "categories": list(record.categories),
        }
        sent = []
        for place in self.engine.placements(view):
            value = json.dumps({"child": place.child, "household": place.household,
                                "residents": list(place.residents), "record": body,
                                "legacy": place.legacy,
                                "renamed": [list(pair) for pair in place.renamed],
                                "named": list(place.named)})  # fmt: skip
            sent.append(await self.bychild.send(key=place.child.encode(), value=value.encode()))
        return sent

    async def on_child_record(
        self, value: bytes, partition: int, offset: int | None = None
    ) -> None:
        try:
            msg = json.loads(value)
            if "withdraw" in msg:
                self._withdraw(self.windows, self.engine.withdraw, msg["withdraw"], partition)
                return
            child = msg["child"]
            residents = tuple(msg.get("residents") or (child,))
            # Absent from a message an older service wrote (its child key is the old one).
            legacy = msg.get("legacy")
            renamed = tuple((str(o), str(n)) for o, n in msg.get("renamed") or ())
            named = tuple(str(c) for c in msg.get("named") or ())
            place = Placement(child, msg.get("household"), residents, legacy, renamed, named)
            record = window_record(msg["record"])
            if self._withdrawn(self.windows, partition, record.event_id):
                return  # its withdrawal notice was read first: the record never counts
            state = self.windows.get(child)
            if legacy is not None:
                state = self.engine.adopt(state, legacy, self.windows.get(legacy))
            state, raised, household, left = self.engine.apply(state, place, record)
        except Exception as exc:  # noqa: BLE001  # see _failed: skipped, loudly, not a stop
            self._failed("child", partition, offset, exc)
            return
        await self._publish(raised, () if legacy is None else (legacy,))
        if household is not None:
            # Acknowledged before the state below records the record as seen.
            body = json.dumps(household.to_json()).encode()
            key = household.household.encode()
            await (await self.byhousehold.send(key=key, value=body, force=True))
        if left is not None:
            # The household it was placed in before no longer counts it as a sibling; told
            # before the state below records the record as seen, as above.
            body = json.dumps({"left": left, "child": child}).encode()
            await (await self.byhousehold.send(key=left.encode(), value=body, force=True))
        self.windows[child] = state

    async def on_household_record(
        self, value: bytes, partition: int, offset: int | None = None
    ) -> None:
        try:
            msg = json.loads(value)
            if "withdraw" in msg:
                without = self.engine.withdraw_household
                self._withdraw(self.households, without, msg["withdraw"], partition)
                return
            if "left" in msg:  # a child of this household placed in another since
                house = self.households.get(msg["left"])
                if house is not None:
                    moved = left_household(house, str(msg["child"]))
                    if moved is not house:
                        self.households[msg["left"]] = moved
                return
            message = HouseholdMessage.from_json(msg)
            if self._withdrawn(self.households, partition, message.record[1]):
                return
            key = message.household
            state, raised = self.engine.apply_household(self.households.get(key), message)
        except Exception as exc:  # noqa: BLE001  # see _failed: skipped, loudly, not a stop
            self._failed("household", partition, offset, exc)
            return
        await self._publish(raised, tuple(o for o, n in message.renamed if n == message.child))
        self.households[key] = state

    def _rule_failed(self, rule: str, error: str) -> None:
        """A rule's ``when`` failed on a window: it did not fire there. Logged and counted
        each time, naming the rule and the error's type only (never the window's values)."""
        self.counts.rule_failed(rule)
        log.error("flags_rule_failed", party=self.party, rule=rule, error=error)

    def _failed(self, step: str, partition: int, offset: int | None, exc: Exception) -> None:
        """A re-keyed message the step could not work on: a bug, or a message written by
        another version of the service. Stopping would not help: faust would give the same
        message again at every restart and no child's flags would be raised at all. So it
        is passed over, the child's (or household's) state left as it was, with an error
        that says where it is (to replay once fixed) and the exception's type only: its
        text could hold a value from the record."""
        self.failed += 1
        self.counts.failed[step] = self.counts.failed.get(step, 0) + 1
        log.error(
            "flags_record_failed",
            party=self.party,
            step=step,
            partition=partition,
            offset=offset,
            error=type(exc).__name__,
        )

    async def _publish(self, raised: list[Flag], legacy: tuple[str, ...] = ()) -> None:
        """Send the flags not on the topic already, under their id or, for a child keyed
        anew, the id they had under one of its ``legacy`` keys (raised before the upgrade)."""
        if not raised:
            return
        async with self._reading:
            if self.published is None:
                self.published = await published_flag_ids(self.kafka, desk_flags(self.party))
        published = self.published
        new = [
            f
            for f in raised
            if f.flag_id not in published
            and not any(flag_id(f.rule, old, f.trigger_event_id) in published for old in legacy)
        ]
        for f in new:
            body = f.model_dump_json().encode()
            # force: sent now, not held until the input offset commits; awaited: on the
            # topic before the caller's state says it was raised.
            sent = await self.out.send(key=f.flag_id.encode(), value=body, force=True)
            await sent
            self.published.add(f.flag_id)
        if new:
            self.counts.raised += len(new)
            log.info("flags_raised", party=self.party, count=len(new))

    def _withdraw(
        self, table: Any, without: _Without, event_ids: list[str], partition: int
    ) -> None:
        # Only this partition's keys: a table write goes to the changelog partition of the
        # event being processed, which must be the key's own.
        gone = set(event_ids)
        markers = []
        for key, state in list(table.items()):
            if state is None or partition_for(key.encode(), self.everyone) != partition:
                continue
            if is_marker(key):
                markers.append((key, state))
                continue
            changed = without(state, gone)
            if changed is not None:
                table[key] = changed
        # Kept for records not here yet, for as long as one could come (._withdrawn).
        self.withdrawn.note(table, partition, sorted(gone), markers)

    def _withdrawn(self, table: Any, partition: int, event_id: str) -> bool:
        return self.withdrawn.holds(table, partition, event_id)


def build_flags_app(opts: FlagServiceOptions) -> faust.App:
    """The party's flag service, ready for ``faust.Worker(app).execute_from_commandline()``."""
    app = _build(opts)[0]
    # faust runs the service on its own loop (mode's, the app's and its worker's alike), not
    # on broker.cli's: the same bound as every other service's, before anything connects, so
    # a TLS close waits at most TLS_CLOSE_S for a peer's close_notify, not the loop's 30 s.
    bound_tls_close(app.loop)
    return app


def _build(opts: FlagServiceOptions) -> tuple[faust.App, _Service]:
    """The app, and the service its agents and tasks run (made without Kafka: tests look)."""
    import faust  # noqa: PLC0415  # faust loads only in the service, not with broker.desk

    party = opts.party
    _, bychild_name, _, byhousehold_name = desk_flags_internal(party)
    app = faust.App(
        desk_flags(party),
        broker=f"kafka://{opts.kafka.bootstrap}",
        broker_credentials=_credentials(opts.kafka),
        store="memory://",
        web_enabled=False,
        topic_replication_factor=opts.kafka.replication_factor,
        topic_partitions=opts.partitions,
        datadir=str(opts.datadir),
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Provisioning creates every topic the service uses (broker.topics names them);
        # a party holds no right to create topics.
        topic_allow_declare=False,
        # One service per party: no leader election (and no leader topic to create).
        topic_disable_leader=True,
    )
    bychild = app.topic(
        bychild_name, key_serializer="raw", value_serializer="raw", partitions=opts.partitions
    )
    byhousehold = app.topic(
        byhousehold_name, key_serializer="raw", value_serializer="raw", partitions=opts.partitions
    )
    out = app.topic(desk_flags(party), key_serializer="raw", value_serializer="raw")
    windows = app.Table("windows", default=None, partitions=opts.partitions)
    households = app.Table("households", default=None, partitions=opts.partitions)
    service = _Service(opts, (bychild, byhousehold, out), (windows, households))
    # The first step, and the topics' settings read again, run by the app as tasks:
    # started and cancelled with it.
    app.task(DeliveryReader(opts.kafka, party, service.opened, counts=opts.counts).run)
    app.task(service.watch.run)

    @app.agent(bychild)
    async def flag(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.on_child_record(
                event.value, event.message.partition, event.message.offset
            )

    @app.agent(byhousehold)
    async def household(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.on_household_record(
                event.value, event.message.partition, event.message.offset
            )

    return app, service
