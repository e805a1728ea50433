"""Trying the parked records again (broker.sdk._parked): when, which, and what becomes of
each; and the judgement a record the keystore refused gets, read from Kafka or parked: held,
parked, or reported and gone past.

One judgement for both, so a record read from the topic and the same record tried again from
the parked store are never told apart: what parks the one keeps the other parked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from typing import Final, TypeVar

import structlog
from pydantic import ValidationError

from broker.envelope import KeyResolver
from broker.errors import EnvelopeError, KeyRejected, RecordKeyUnavailable
from broker.kafka import Consumer, Message, TopicPartition, translated
from broker.keys import KeyStore
from broker.sdk import _parked
from broker.sdk._keyholds import UNKNOWN_SIGNER, awaits_import, gone_key_verdict, judged
from broker.sdk._parked import KeystoreWatch, ParkedRecord
from broker.sdk._replay import SqliteReplayMemory
from broker.sdk._unopenable import Unopenable

__all__ = ["ParkedRetry", "judge_or_park", "retry"]

log = structlog.get_logger("accord.sdk")
_R = TypeVar("_R")
Position = tuple[str, int, int]
#: How often a subscriber with parked records counts them again (a cheap count in SQLite).
_RECOUNT_EVERY: Final = 1.0


#: Opens a record with the keys given and asks the replay memory whether it would admit it,
#: recording nothing (broker.sdk._keyholds.gone_key_verdict).
Look = Callable[[Message | ParkedRecord, KeyResolver], object]


def judge_or_park(
    keys: KeyResolver,
    party: str,
    msg: Message | ParkedRecord,
    look: Look,
    *,
    retention: float,
    skip: bool,
) -> RecordKeyUnavailable | str | None:
    """For a record the opener refused as ``key-rejected``: ``None`` when it is to be parked
    (it names the broker as sender and a signing key this keystore has never heard of: one an
    import may bring), else what :func:`broker.sdk._keyholds.judged` says, or for an unknown
    signer :func:`broker.sdk._keyholds.gone_key_verdict` (held when the broker signed it with
    a key since expired; ``retention`` and ``skip`` are its): the error to stop on, or the
    reason to report it under."""
    found = judged(
        keys, party, topic=msg.topic, partition=msg.partition, offset=msg.offset,
        headers=msg.headers,
    )  # fmt: skip
    if found != UNKNOWN_SIGNER:
        return found
    if awaits_import(keys, msg.headers):
        return None

    def looked(revived: KeyResolver) -> object:
        return look(msg, revived)

    return gone_key_verdict(keys, msg, looked, retention=retention, skip=skip) or found


def retry(
    rows: list[ParkedRecord],
    open_or_raise: Callable[[ParkedRecord], _R],
    *,
    keys: KeyResolver,
    party: str,
    look: Look,
    retention: float,
    skip_key_problems: bool,
    report: Callable[[Unopenable], None],
) -> tuple[list[tuple[Position, _R]], list[Position]]:
    """The parked records that open now, with their positions, by position; and the positions
    of those that never will (reported, to be forgotten). Those still waiting for a key, and
    those held (by the party's own keys, or signed by a broker key the import shows expired:
    judged as if read from the topic), stay parked."""
    out: list[tuple[Position, _R]] = []
    gone: list[Position] = []
    for msg in rows:
        try:
            record = open_or_raise(msg)
        except KeyRejected as exc:
            found = judge_or_park(
                keys, party, msg, look, retention=retention, skip=skip_key_problems
            )
            if found is None:
                continue  # still waiting for its key
            if isinstance(found, RecordKeyUnavailable) and not skip_key_problems:
                # Its offset is committed: it stays parked until the keystore is mended.
                log.error("parked_record_held", why=str(found), key_id=found.key_id)  # noqa: TRY400  # not an exception's trace
                continue
            gone.append(msg.position)
            report(Unopenable(msg.partition, msg.offset, _reason(found, exc)))
        except EnvelopeError as exc:
            gone.append(msg.position)
            report(Unopenable(msg.partition, msg.offset, exc.reason))
        except ValidationError:
            gone.append(msg.position)
            report(Unopenable(msg.partition, msg.offset, "invalid-payload"))
        else:
            log.info("parked_record_opened", partition=msg.partition, offset=msg.offset)
            out.append((msg.position, record))
    return out, gone


class ParkedRetry:
    """A subscriber's retries of its parked records: on start, once the keystore changed (a
    key imported or restored: :class:`broker.sdk._parked.KeystoreWatch`), and once the
    consumer's assignment changed. Only those on partitions the consumer is assigned: another
    process sharing the replay file retries its own."""

    def __init__(
        self,
        keys: KeyStore,
        party: str,
        topic: str,
        *,
        look: Look,
        retention: float,
        skip_key_problems: bool,
        report: Callable[[Unopenable], None],
    ) -> None:
        self._keys, self._party, self._topic = keys, party, topic
        self._look, self._retention = look, retention
        self._skip_key_problems = skip_key_problems
        self._report = report
        self._watch = KeystoreWatch(keys)
        self._assigned: set[TopicPartition] = set()  # the assignment parked rows were tried for
        self._counted = -math.inf

    def parked(self) -> None:
        """A record was parked under the keystore as it is now: not due until it changes."""
        self._watch.parked()

    async def due(
        self,
        memory: SqliteReplayMemory,
        consumer: Consumer,
        open_or_raise: Callable[[ParkedRecord], _R],
        *,
        busy: Collection[Position] = (),
    ) -> list[tuple[Position, _R]]:
        """The parked records that open now, with their positions, by position, if a retry
        is due; those that never will are forgotten, the rest stay parked. Those at ``busy``
        positions (opened already, or handed over and not yet committed) are left alone:
        still parked until the commit is confirmed, they would otherwise be handed over
        twice."""
        if time.monotonic() - self._counted >= _RECOUNT_EVERY:
            # Counted again now and then, a count of none too: an operator may have dropped
            # some meanwhile (the desk's banner and gauge should not go on saying they are
            # there), and another process sharing the file may have parked some on a
            # partition since moved to this one.
            self._counted = time.monotonic()
            memory.recount_parked()
        if not memory.parked_count:
            return []
        assigned = set(consumer.assignment())
        due = self._watch.due() or assigned != self._assigned
        self._assigned = assigned
        if not due or not assigned:
            return []  # with nothing assigned yet, tried when the assignment comes
        async with translated(f"consuming {self._topic}"):
            rows, gone = await _parked.ours(
                [r for r in memory.parked() if r.position not in busy], consumer, assigned
            )
        out, never = retry(
            rows, open_or_raise, keys=self._keys, party=self._party, look=self._look,
            retention=self._retention, skip_key_problems=self._skip_key_problems,
            report=self._report,
        )  # fmt: skip
        memory.unpark(gone + never)
        return out


def _reason(found: RecordKeyUnavailable | str, exc: KeyRejected) -> str:
    return found if isinstance(found, str) else exc.reason
