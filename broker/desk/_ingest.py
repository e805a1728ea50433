"""Filling the desk's store: the party's deliveries and notices, and the flag service's flags.

Deliveries come through the SDK's :class:`Subscriber` (consumer group ``<party>.desk``), which
opens them with the party's own key and acknowledges nothing by itself: the desk sends only
person-level acknowledgements, when a signed-in person views a record (:mod:`._pages`). A
withdrawal notice hides the records it names at once, with the reason kept for the banner.
Flags are plain JSON on ``accord.desk.<party>.flags`` (:class:`broker.desk.Flag`), stored once
per flag id.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError

from broker.desk._flag import Flag, view_child_keys
from broker.desk._ingest_held import DeliveriesHeld
from broker.desk._probes import KafkaContact
from broker.desk._store import DeskStore
from broker.errors import ConfigError, RecordKeyUnavailable, StoreUnavailable, TransportError
from broker.events import Delivery, WithdrawalNotice
from broker.kafka import Consumer, KafkaClients, stop_bounded, translated
from broker.sdk import SharedRecord, Subscriber

__all__ = [
    "DeskIngest",
    "children_in",
    "flags_consumer",
    "flags_topic",
    "stop_consumer",
    "withdrawal_reason",
]

log = structlog.get_logger("accord.desk")
_LONDON = ZoneInfo("Europe/London")
#: How often a desk held on a record its keystore cannot open tries it again: a restored
#: keystore is seen without a restart.
HELD_RETRY_SECONDS = 30.0


def flags_topic(party: str) -> str:
    return f"accord.desk.{party}.flags"


def children_in(view: Mapping[str, Any], secret: bytes) -> list[str]:
    """The desk keys of the view's child subjects (every subject's when the view names no
    roles, as an outcome's or a school's view may not), in subject order."""
    return [k.key for k in view_child_keys(view, secret) if k.key is not None]


def withdrawal_reason(notice: WithdrawalNotice) -> str:
    """The banner's text, kept with the hidden record: its time in London's (the pages')."""
    purposes = ", ".join(p.replace("_", " ") for p in notice.purposes) or "every purpose"
    when = notice.withdrawn_at.astimezone(_LONDON).strftime("%Y-%m-%d %H:%M %Z")
    return f"Consent withdrawn for {purposes} on {when}: stop using this record."


class DeskIngest:
    """One poll at a time: deliveries and notices into the store, then flags."""

    def __init__(
        self,
        store: DeskStore,
        subscriber: Subscriber,
        *,
        linkage_key: bytes,
        clock: Callable[[], datetime],
        flags: Consumer | None = None,
        contact: KafkaContact | None = None,
        held: DeliveriesHeld | None = None,
    ) -> None:
        self.store = store
        self.subscriber = subscriber
        self._key = linkage_key
        self._clock = clock
        self._flags = flags
        self._contact = contact
        #: Whether reading deliveries is held on a record the keystore cannot open: the
        #: desk stays ready and serves what is stored; the pages and a gauge say so.
        self.held = held if held is not None else DeliveriesHeld()
        self._held_tried = 0.0  # when a held record was last tried (time.monotonic)
        self._unstored: list[SharedRecord] = []
        self._unstored_flags: dict[Any, list[Any]] = {}
        self._store_away = False  # since the last StoreUnavailable, until a poll goes through
        self._store_away_why: str | None = None

    async def poll_once(self, wait: float) -> int:
        """Take what is there within ``wait`` seconds; how many new things were stored.

        A record the keystore cannot open holds the deliveries only (tried again every
        :data:`HELD_RETRY_SECONDS`, so a restored keystore is seen without a restart): the flags are
        still read, and ``run`` still records Kafka's answers."""
        stored = 0
        if self.held.held and time.monotonic() - self._held_tried < HELD_RETRY_SECONDS:
            await asyncio.sleep(wait)  # the pace a delivery poll would have kept
        else:
            try:
                stored += await self._poll_deliveries(wait)
            except RecordKeyUnavailable as exc:
                # Not a crash: a restart would stop on the same record.
                self.held.hold(exc)
                self._held_tried = time.monotonic()
            else:
                self.held.resume()
                self.held.count_parked(self.subscriber.parked)
        if self._flags is not None:
            stored += await self._poll_flags()
        return stored

    async def _poll_deliveries(self, wait: float) -> int:
        stored = 0
        # Committed once stored: a crash (or a store that fails) in between delivers the
        # batch again, which the store takes once by event id; committed first, it was lost.
        # A database out of reach keeps the batch here and nothing more is read until it is
        # stored: the consumer is past it, so the next poll would skip it, and a later commit
        # would commit past it for good.
        if not self._unstored:
            self._unstored = await self.subscriber.poll(wait, commit=False)
        for record in self._unstored:
            message = record.message
            if isinstance(message, Delivery):
                keys = view_child_keys(message.view, self._key)
                children = [k.key for k in keys if k.key is not None]
                stored += self.store.add_delivery(message, children, self._clock())
                # A flag raised under a legacy key may still come (docs/desk.md, "Upgrading").
                self.store.add_aliases({k.legacy: k.key for k in keys if k.key and k.legacy})
            else:
                hidden = self.store.hide(
                    message.event_ids, withdrawal_reason(message), self._clock()
                )
                log.info("desk_records_hidden", count=hidden, notice=message.notice_id)
                stored += hidden
        self._unstored = []
        await self.subscriber.commit()
        return stored

    async def _poll_flags(self) -> int:
        flags = self._flags
        if flags is None:
            return 0
        stored = 0
        batch = self._unstored_flags  # kept while the database was out of reach (as above)
        if not batch:
            async with translated("consuming the desk's flags"):
                batch = self._unstored_flags = await flags.getmany(timeout_ms=50)
        for messages in batch.values():
            for msg in messages:
                try:
                    flag = Flag.model_validate_json(msg.value or b"")
                except ValidationError:
                    log.warning("desk_flag_unreadable", partition=msg.partition, offset=msg.offset)
                    continue
                stored += self.store.add_flag(flag, self._clock())
        self._unstored_flags = {}
        if batch:
            async with translated("committing the desk's flags"):
                await flags.commit()
        return stored

    def is_held(self) -> bool:
        return self.held.held

    async def run(self, stop: asyncio.Event, *, interval: float) -> None:
        while not stop.is_set():
            try:
                await self.poll_once(interval)
            except TransportError as exc:
                # Kafka away for a moment: the pages keep showing what is stored; try again.
                log.warning("desk_ingest_unavailable", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(interval, 1.0))
                continue
            except StoreUnavailable as exc:
                # PostgreSQL restarting: the batch waits here (``_unstored``), the pages say
                # the database cannot be reached, and a later statement connects again. Said
                # once as it goes (and as its reason changes), not at every try.
                if not self._store_away or exc.why != self._store_away_why:
                    log.warning("desk_store_unavailable", where=exc.where, why=exc.why)
                self._store_away, self._store_away_why = True, exc.why
                self.held.store_away(True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(interval, 1.0))
                continue
            except ConfigError as exc:
                if not _busy(exc):
                    raise
                # The replay memory held past its 10 s by another process sharing it: nothing
                # is lost (the subscriber reads the batch again), so try again, saying so.
                log.warning("desk_ingest_replay_memory_busy", error=str(exc.__cause__))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(interval, 1.0))
                continue
            if self._store_away:
                log.info("desk_store_back")
                self._store_away, self._store_away_why = False, None
                self.held.store_away(False)
            # A poll that raised nothing may still have heard nothing (aiokafka answers an
            # empty batch while no broker answers): the contact asks Kafka itself, held or
            # not. A poll that keeps failing never gets that far, so the gauge goes stale.
            if self._contact is not None:
                await self._contact.check()


def _busy(exc: ConfigError) -> bool:
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", 0) if isinstance(cause, sqlite3.Error) else 0
    return (code & 0xFF) in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def flags_consumer(kafka: KafkaClients, party: str) -> Consumer:
    return kafka.consumer(
        flags_topic(party), client_id=f"accord-desk-{party}", group=f"{party}.desk-flags"
    )


async def stop_consumer(consumer: Consumer | None) -> None:
    """Stop the flags consumer, waiting at most ``stop_bounded``'s wait (a TLS close can take
    30 s). Nothing is lost: its offsets are committed as each batch is stored
    (``_poll_flags``), and its stop commits nothing."""
    if consumer is not None:
        with contextlib.suppress(Exception):
            await stop_bounded(consumer)
