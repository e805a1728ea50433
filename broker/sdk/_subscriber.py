"""The recipient side: consume the party's own delivery topic, open, acknowledge access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from pydantic import ValidationError

from broker.config import EnvelopeSettings, KafkaSettings
from broker.envelope import KeyResolver, Opener, Sealer
from broker.errors import (
    EnvelopeError,
    KeyRejected,
    KeyStoreError,
    RecordKeyUnavailable,
    TransportError,
    UsageError,
)
from broker.events import Delivery, WithdrawalNotice
from broker.kafka import (
    Consumer,
    KafkaClients,
    Message,
    TopicPartition,
    connecting,
    stop_quietly,
    translated,
)
from broker.keys import KeyStore
from broker.sdk._acknowledge import access_ack, sealed_acks
from broker.sdk._bounded import DEFAULT_SEND_TIMEOUT, BoundedProducer, stop_consumer
from broker.sdk._client import AsyncClient, kafka_clients, utcnow
from broker.sdk._keycheck import require_opening, require_sealing
from broker.sdk._keyholds import UNKNOWN_SIGNER
from broker.sdk._opening import GuardedByMemory, open_record, require_started
from broker.sdk._parked import ParkedRecord
from broker.sdk._parked_retry import ParkedRetry, judge_or_park
from broker.sdk._replay import (
    DEFAULT_REPLAY_RETENTION,
    IN_MEMORY,
    SqliteReplayMemory,
    _Default,
    default_replay_file,
)
from broker.sdk._unopenable import Unopenable, log_unopenable
from broker.topics import ACCESS, deliver

log = structlog.get_logger("accord.sdk")
_NOT_COMMITTED = (
    "nothing is counted as committed: what was handed over since the last commit may be "
    "delivered again (handled by event_id), and commit() may be called again"
)


class SharedRecord:
    """One opened delivery or notice; ``await opened(by=..., purpose=...)`` records access."""

    def __init__(self, message: Delivery | WithdrawalNotice, subscriber: Subscriber) -> None:
        self.message = message
        self._subscriber = subscriber

    @property
    def is_notice(self) -> bool:
        return isinstance(self.message, WithdrawalNotice)

    async def opened(self, *, by: str, purpose: str) -> None:
        """Tell the broker ``by`` opened this record for ``purpose`` (audited as ``opened``)."""
        if not isinstance(self.message, Delivery):
            raise UsageError("a notice is not a shared record; there is nothing to open")
        await self._subscriber.acknowledge(self.message.event_id, by=by, purpose=purpose)


class Subscriber(AsyncClient):
    """Consumes ``accord.deliver.<party>`` as consumer group ``group`` (``<party>.NAME``, the
    groups a recipient's ACLs allow) and opens each record.

    Iterate with ``async for record in subscriber``. Records that cannot be opened are passed
    to ``on_unopenable`` (default: logged with partition, offset and reason) and kept in
    ``unopenable``. Offsets are committed after each yielded record, so a crash re-delivers
    at most the record being handled: that record is yielded again, so handle records
    idempotently by ``event_id`` and the view's ``sender``.

    A record the broker signed (the signature verified) that this keystore cannot open
    because of the party's own keys (sealed to a key it does not hold, retired or revoked,
    or after that key expired) stops ``async for`` and ``poll`` with
    ``RecordKeyUnavailable`` naming its place, the key and what to do: nothing from it on
    is committed, and it is read again (broker.sdk._keyholds). ``skip_key_problems=True``
    reports such records as ``key-rejected`` and goes past them instead, losing them. A
    record sealed to one of the party's own encryption keys that has since expired (a
    rotation's grace over) still opens, if it was sealed while the key was live. A record
    whose signature verifies under a signing key of the broker's this keystore knows as
    expired (after it signed the record, before this group read it) is held the same way,
    unless it is a copy of one opened before (``replay``); one signed by a key since revoked
    (compromised) is not. Any other record signed by a key this keystore does not accept is
    reported as ``unknown-signer`` (logged as an error) and committed past, never held: its
    key id is anybody's claim. One naming the broker as sender and a signing key this keystore has
    never heard of is also parked (``Unopenable.parked``; ``parked`` counts them): kept in
    the replay memory and tried again on start and whenever the keystore changes, so a
    genuine delivery signed by a broker key imported late is yielded then, at its own
    position, once (broker.sdk._parked).

    Replay protection survives restarts: ``replay_memory`` is a SQLite file remembering each
    record opened (its event id and the agency that sent the event) and where (default
    ``default_replay_file(group)``, under the Accord home). A record opened before is
    yielded again only when it comes back at the position where it was first opened and
    that offset was never committed; any other copy is reported as unopenable (``replay``).
    ``replay_memory=None`` remembers for this run only (logged as a warning at start).
    Sightings older than ``replay_retention`` are forgotten.

    The keystore must hold the party's live encryption key and signing key (for its
    acknowledgements) and the broker's live keys (to verify deliveries and seal
    acknowledgements): else ``KeyStoreError`` here, naming the fix.

    ``commit`` gives up after ``send_timeout`` seconds (``TransportError``: nothing counted
    as committed, and a later ``commit`` commits it all), and ``stop`` returns within
    ``send_timeout`` + 5 s, abandoning a consumer Kafka does not let go of.

    An acknowledgement is sent within ``send_timeout`` seconds or not at all
    (``TransportError``; broker.sdk._bounded). With ``transactional_id`` (a recipient may use
    ids starting ``accord.desk.<party>.``) one given up on is never recorded, unless the limit
    passed while Kafka was committing it; that case, and one without a transactional id, is
    ``SendUnconfirmed``: not sent again, but Kafka may have it already.
    """

    def __init__(
        self,
        party: str,
        keystore: KeyStore,
        kafka: KafkaClients | KafkaSettings,
        group: str,
        *,
        envelope: EnvelopeSettings | None = None,
        on_unopenable: Callable[[Unopenable], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        replay_memory: Path | str | _Default | None = _Default.HOME_FILE,
        replay_retention: timedelta = DEFAULT_REPLAY_RETENTION,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        transactional_id: str | None = None,
        skip_key_problems: bool = False,
    ) -> None:
        if party not in keystore.private_parties():
            # Records are sealed to the party's own key: nothing here could open them.
            raise KeyStoreError(f"this keystore holds no private key for {party}")
        self.party = party
        self.topic = deliver(party)
        self._keys = keystore
        self._skip_key_problems = skip_key_problems
        # A delivery waits on the topic (30 days) longer than a rotated-out key's grace (7):
        # the party's own expired keys still open what was sealed while they were live.
        self._opener = Opener(
            party, keystore, replay_guard=GuardedByMemory(), expired_own_keys=True
        )
        envelope = envelope or EnvelopeSettings()
        self._sealer = Sealer(party, keystore, envelope)
        require_opening(party, keystore)
        # Its access acknowledgements go to the broker.
        require_sealing(party, self._sealer, keystore, envelope.kem)
        self._kafka = kafka_clients(kafka)
        if not group.startswith(f"{party}.") or len(group) == len(party) + 1:
            # Provisioning lets a recipient use only its own groups: say so here, not as a
            # group-authorization error from deep inside the consumer.
            raise UsageError(f"consumer group {group!r}: a recipient's groups are {party}.NAME")
        self._group = group
        self._clock = clock
        self._replay_file = (
            default_replay_file(group) if replay_memory is _Default.HOME_FILE else replay_memory
        )
        self._replay_retention = replay_retention
        self._send_timeout = send_timeout
        self._yielded: Message | None = None  # yielded by async for, not yet committed
        self._polled: dict[tuple[str, int], int] = {}  # poll's last offsets, not yet committed
        self._memory: SqliteReplayMemory | None = None
        self._unparking: list[tuple[str, int, int]] = []  # handed over, removed once committed
        # Parked records opened by a retry and not yet handed over: they stay parked (so a
        # crash loses none) until one is handed over and committed.
        self._retried: list[tuple[tuple[str, int, int], SharedRecord]] = []
        self._on_unopenable = on_unopenable or self._log_unopenable
        self._retry = ParkedRetry(
            keystore, party, self.topic, look=self._look,
            retention=replay_retention.total_seconds(), skip_key_problems=skip_key_problems,
            report=self._report,
        )  # fmt: skip
        self.unopenable: list[Unopenable] = []
        self._consumer: Consumer | None = None
        self._acks = BoundedProducer(
            self._kafka, f"accord-subscriber-{party}", timeout=send_timeout,
            transactional_id=transactional_id,
        )  # fmt: skip

    async def start(self) -> None:
        # The memory first: a file that cannot be used is reported before Kafka is contacted.
        memory = self._open_memory()
        client = f"accord-subscriber-{self.party}"
        consumer = self._kafka.consumer(self.topic, client_id=client, group=self._group)
        try:
            async with connecting(self._kafka):
                await consumer.start()
            await self._acks.start()
        except BaseException:
            await stop_quietly(consumer)  # else it is reported unclosed after our error line
            memory.close()
            raise
        self._consumer, self._memory = consumer, memory

    async def stop(self) -> None:
        """Stop within ``send_timeout`` + 5 s: the consumer and the acknowledgements'
        producer together, each abandoned past that rather than waited for (a SIGTERM must
        not wait for Kafka's return). Nothing is committed here."""
        consumer, memory = self._consumer, self._memory
        self._consumer = self._memory = None
        stops = [self._acks.stop()]
        if consumer is not None:
            client = f"accord-subscriber-{self.party}"
            stops.append(stop_consumer(consumer, send_timeout=self._send_timeout, client_id=client))
        try:
            failed = [
                e for e in await asyncio.gather(*stops, return_exceptions=True) if e is not None
            ]
        finally:
            if memory is not None:
                memory.close()
        if failed:
            raise failed[0]

    def _open_memory(self) -> SqliteReplayMemory:
        where = self._replay_file
        if where is None or str(where) == IN_MEMORY:
            log.warning(
                "replay_memory_in_memory_only",
                party=self.party,
                group=self._group,
                consequence="records opened before a restart are opened and yielded again",
            )
            where = IN_MEMORY
        return SqliteReplayMemory(
            where, group=self._group, retention=self._replay_retention, clock=self._clock
        )

    def __aiter__(self) -> AsyncIterator[SharedRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SharedRecord]:
        consumer = require_started(self._consumer)
        while True:
            if not self._retried:
                self._retried = await self._retry_parked(consumer)
            while self._retried:
                # Marked for unparking only as it is handed over: the rest of the round stays
                # parked if the caller stops here.
                position, again = self._retried.pop(0)
                self._unparking.append(position)
                yield again
                await self.commit()
            # Woken every second, parked records or not, to notice an import (the keystore
            # looks as often) and records parked by another process sharing the file on a
            # partition since moved to this one.
            async with translated(f"consuming {self.topic}"):
                batch = await consumer.getmany(timeout_ms=1000, max_records=1)
            if not batch:
                continue
            [msg] = [m for msgs in batch.values() for m in msgs]
            try:
                record = self._open(msg)
            except RecordKeyUnavailable:
                # Held: read again by the next iteration (or the next start), never passed.
                consumer.seek(TopicPartition(msg.topic, msg.partition), msg.offset)
                raise
            if record is not None:
                self._yielded = msg
                yield record
            self._yielded = msg
            await self.commit()

    async def commit(self) -> None:
        """Commit every record ``async for`` has yielded so far, and every batch
        ``poll(commit=False)`` has returned.

        The loop commits a record when it is asked for the next one; call this after
        handling the last record before leaving the loop (``break``), or that record is
        delivered again next time.

        ``TransportError`` if Kafka has not confirmed it within ``send_timeout`` seconds
        (aiokafka would retry for as long as Kafka does not answer), or refused it (the
        group rebalanced): nothing is counted as committed, and calling ``commit`` again
        commits it all. Those records may be delivered again after a restart.
        """
        msg, memory = self._yielded, require_started(self._memory)
        consumer = require_started(self._consumer)
        # Parked records handed over are handled now: forgotten (their offsets were
        # committed when they were parked), but only with the rest, once Kafka confirms.
        unparking = list(self._unparking)
        polled = dict(self._polled)
        if msg is not None:  # never below what poll returned on the same partition
            at = (msg.topic, msg.partition)
            polled[at] = max(polled.get(at, msg.offset), msg.offset)
        if not polled:
            self._unpark(memory, unparking)
            return
        what = f"committing {self.topic}"
        try:
            async with asyncio.timeout(self._send_timeout), translated(what):
                await consumer.commit()
        except TimeoutError:
            raise TransportError(
                f"{what}: Kafka did not confirm within {self._send_timeout:g} s; {_NOT_COMMITTED}"
            ) from None
        except TransportError as exc:
            raise TransportError(f"{exc}; {_NOT_COMMITTED}") from exc
        # Only once Kafka confirmed: a commit that failed or was cancelled keeps its marks.
        # Not ones a poll raised meanwhile, which this commit did not cover.
        self._unpark(memory, unparking)
        for key, offset in polled.items():
            memory.committed(key[0], key[1], offset + 1)
            if self._polled.get(key, offset) <= offset:
                self._polled.pop(key, None)
        if self._yielded is msg:
            self._yielded = None

    def _unpark(self, memory: SqliteReplayMemory, positions: list[tuple[str, int, int]]) -> None:
        memory.unpark(positions)
        done = set(positions)
        self._unparking = [p for p in self._unparking if p not in done]

    async def poll(self, wait: float = 1.0, *, commit: bool = True) -> list[SharedRecord]:
        """Everything available within ``wait`` seconds (may be empty).

        Committed as it is returned (``commit=True``: a crash while the batch is handled
        loses the rest of it); with ``commit=False`` only by the next :meth:`commit`, called
        once the batch is handled, so a crash before that delivers it again.

        ``RecordKeyUnavailable`` (see the class) returns nothing of the batch: all of it is
        read again, by the next poll or the next start. So does any other error while it is
        opened (a ``ConfigError``: the replay memory busy past its timeout, say), and a failed
        or cancelled commit with ``commit=True``: the batch never reached the caller, so its
        parked records stay parked and its fresh ones are read again by the next poll.
        """
        consumer = require_started(self._consumer)
        async with translated(f"consuming {self.topic}"):
            batch = await consumer.getmany(timeout_ms=int(wait * 1000))
        try:
            # Kafka's batch first: a record it hands over again (a rewound group) is no longer
            # parked once opened, so its parked copy is not handed over too.
            fresh = [r for msgs in batch.values() for m in msgs if (r := self._open(m)) is not None]
            retried = [*self._retried, *await self._retry_parked(consumer)]
        except BaseException:
            # A held record, or a replay memory busy for a moment: nothing of the batch is
            # marked, and every partition is read again from where the batch began. What came
            # before comes again at the same positions, uncommitted, so the replay memory
            # admits it again, and a caller that carries on (the desk) loses none of it.
            _read_again(consumer, batch)
            raise
        self._retried = []
        self._unparking += [position for position, _ in retried]
        polled_before = dict(self._polled)
        for msgs in batch.values():
            last = max(msgs, key=lambda m: m.offset)
            self._polled[(last.topic, last.partition)] = last.offset
        if commit:
            try:
                await self.commit()
            except BaseException:
                # The batch never reached the caller: its parked records stay parked and come
                # first next time, and the rest is read again, as above, and not counted as
                # polled (a later commit would mark it handled in the replay memory).
                taken = {position for position, _ in retried}
                self._unparking = [p for p in self._unparking if p not in taken]
                self._retried = retried + self._retried
                self._polled = polled_before
                _read_again(consumer, batch)
                raise
        return [record for _, record in retried] + fresh

    def _open(self, msg: Message) -> SharedRecord | None:
        try:
            return self._open_or_raise(msg)
        except KeyRejected as exc:
            found = judge_or_park(
                self._keys, self.party, msg, self._look,
                retention=self._replay_retention.total_seconds(), skip=self._skip_key_problems,
            )  # fmt: skip
            if found is None:
                require_started(self._memory).park(msg)
                self._retry.parked()
                self._report(Unopenable(msg.partition, msg.offset, UNKNOWN_SIGNER, parked=True))
                return None
            if isinstance(found, str):
                reason = found
            elif self._skip_key_problems:
                reason = exc.reason
            else:
                raise found from None
        except EnvelopeError as exc:
            reason = exc.reason
        except ValidationError:
            reason = "invalid-payload"
        self._report(Unopenable(msg.partition, msg.offset, reason))
        return None

    def _look(self, msg: Message | ParkedRecord, keys: KeyResolver) -> object:
        """Open ``msg`` with ``keys`` only to learn whether it is a replay, recording no
        sighting (broker.sdk._keyholds.gone_key_verdict); never handed over."""
        opener = Opener(self.party, keys, replay_guard=GuardedByMemory(), expired_own_keys=True)
        return self._open_or_raise(msg, opener, look_only=True)

    def _report(self, bad: Unopenable) -> None:
        self.unopenable.append(bad)
        self._on_unopenable(bad)

    @property
    def parked(self) -> int:
        """How many records are parked, waiting for the broker key that signed them."""
        return 0 if self._memory is None else self._memory.parked_count

    async def _retry_parked(
        self, consumer: Consumer
    ) -> list[tuple[tuple[str, int, int], SharedRecord]]:
        busy = {*self._unparking, *(position for position, _ in self._retried)}
        return await self._retry.due(
            require_started(self._memory), consumer, self._open_or_raise, busy=busy
        )

    def _open_or_raise(
        self, msg: Message | ParkedRecord, opener: Opener | None = None, *, look_only: bool = False
    ) -> SharedRecord:
        message = open_record(
            opener or self._opener, msg, topic=self.topic, memory=self._memory, look_only=look_only
        )
        return SharedRecord(message, self)

    def _log_unopenable(self, bad: Unopenable) -> None:
        log_unopenable(self.party, bad)

    async def acknowledge(self, event_id: str, *, by: str, purpose: str) -> None:
        """Tell the broker ``by`` opened ``event_id`` for ``purpose`` (audited as ``opened``).

        ``TransportError`` if Kafka did not take it within ``send_timeout``.
        """
        await self.acknowledge_all([event_id], by=by, purpose=purpose)

    async def acknowledge_all(self, event_ids: Sequence[str], *, by: str, purpose: str) -> None:
        """Acknowledge several records shown together: sent together (with a transactional
        id, all recorded or none), within ``send_timeout``."""
        now = self._clock()
        acks = [
            access_ack(e, recipient=self.party, by=by, purpose=purpose, at=now) for e in event_ids
        ]
        if not self._acks.started:
            raise UsageError("the subscriber is not started (use 'async with Subscriber(...)')")
        outgoing = sealed_acks(self._sealer, acks)
        if outgoing:
            await self._acks.send(f"publishing to {ACCESS}", outgoing)


def _read_again(consumer: Consumer, batch: dict[TopicPartition, list[Message]]) -> None:
    """Every partition of ``batch`` read again from where the batch began."""
    for tp, msgs in batch.items():
        consumer.seek(tp, min(m.offset for m in msgs))
