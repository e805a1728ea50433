"""Deliveries kept until the broker key that signed them is imported: the parked records.

A record whose signer this keystore has never heard of, and whose bundle names the broker as
its sender (broker.sdk._keyholds.awaits_import), may be a genuine delivery that the reader is
merely behind with the keys for: late with a rotation's import step, or a keystore restored
from a backup older than its last import. Skipped, it would be lost, although the audit log
says it was shared and nobody can send it again. Held, it would let anyone able to write to
the topic stop every reader. So its offset is committed past like any unopenable record's,
and the record itself (its sealed value and headers, and where it was) is kept here, in the
replay memory's SQLite file (same file, same 0600 mode; in memory when the memory is), and
tried again on start and whenever the keystore changes (broker.sdk._subscriber).

Bounded, so junk written to the topic fills only this: at most :data:`PARKED_LIMIT` rows, none
older than :data:`PARKED_MAX_AGE` (a delivery topic's retention), the oldest dropped first,
each drop logged as an error naming topic, partition and offset only. The value is ciphertext:
it is never logged.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import structlog

from broker.envelope import DEK_BUNDLE_HEADER, claimed_signer
from broker.errors import EnvelopeError
from broker.kafka import Consumer, Message, TopicPartition
from broker.keys import KeyStore

__all__ = ["PARKED_LIMIT", "PARKED_MAX_AGE", "KeystoreWatch", "ParkedEntry", "ParkedRecord"]

log = structlog.get_logger("accord.sdk")

#: The most records kept; past it the oldest is dropped.
PARKED_LIMIT: Final = 10_000
#: A parked record older than this is dropped: a delivery topic keeps its records for 30 days
#: (``broker/kafka/_admin.py``), and a genuine one not opened by then was due a re-send anyway.
PARKED_MAX_AGE: Final = timedelta(days=30)
_LOOK_EVERY: Final = 1.0

# Created on any file that lacks it (IF NOT EXISTS): a memory an earlier SDK made gains it, and
# an earlier SDK reading this file ignores it, so no format version changes.
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS parked (
    topic TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset INTEGER NOT NULL,
    parked_at REAL NOT NULL,
    kafka_timestamp INTEGER NOT NULL,
    kafka_key BLOB,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
) WITHOUT ROWID
"""


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """A parked record as the consumer handed it over (a :class:`broker.kafka.Message`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """What an operator is shown of a parked record (``accord desk parked``): where it was,
    when it was parked (seconds since the epoch) and the signer key id its bundle claims,
    unverified (``None`` if it names none). Never its value."""

    topic: str
    partition: int
    offset: int
    parked_at: float
    signer_key_id: str | None

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


def insert(conn: sqlite3.Connection, msg: Message, now: float) -> None:
    """Keep ``msg`` (once per position: a record read again is not parked twice)."""
    headers = json.dumps([[k, base64.b64encode(v).decode("ascii")] for k, v in msg.headers])
    conn.execute(
        "INSERT OR IGNORE INTO parked VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (msg.topic, msg.partition, msg.offset, now, msg.timestamp, msg.key, msg.value, headers),
    )


Dropped = list[tuple[tuple[str, int, int], str]]


def bound(conn: sqlite3.Connection, now: float, *, limit: int, max_age: timedelta) -> Dropped:
    """Drop what is past the bounds, oldest first; what was dropped and why, for the caller to
    log (:func:`log_dropped`) once its transaction is over, not while it holds the file."""
    why = f"parked longer than {max_age.days} days"
    old = conn.execute(
        "DELETE FROM parked WHERE parked_at < ? RETURNING topic, kafka_partition, kafka_offset",
        (now - max_age.total_seconds(),),
    ).fetchall()
    dropped = [((t, p, o), why) for t, p, o in sorted(old)]
    over = count(conn) - limit
    if over > 0:
        why = f"more than {limit} records parked"
        oldest = conn.execute(
            "DELETE FROM parked WHERE (topic, kafka_partition, kafka_offset) IN ("
            "SELECT topic, kafka_partition, kafka_offset FROM parked "
            "ORDER BY parked_at, topic, kafka_partition, kafka_offset LIMIT ?) "
            "RETURNING topic, kafka_partition, kafka_offset",
            (over,),
        ).fetchall()
        dropped += [((t, p, o), why) for t, p, o in sorted(oldest)]
    return dropped


def log_dropped(dropped: Dropped) -> None:
    """Each drop logged, once the transaction that dropped it is over: a log that blocks (a
    pager, a slow terminal) must not hold the file's write lock, which the subscriber needs."""
    for (topic, partition, offset), why in dropped:
        # Lost for good if it was genuine: an error, naming where it was and nothing of it.
        log.error("parked_record_dropped", topic=topic, partition=partition, offset=offset, why=why)


def rows(conn: sqlite3.Connection) -> list[ParkedRecord]:
    """Every parked record, by position (topic, partition, offset)."""
    found = conn.execute(
        "SELECT topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_key, value, "
        "headers FROM parked ORDER BY topic, kafka_partition, kafka_offset"
    ).fetchall()
    return [
        ParkedRecord(t, p, o, ts, key, value, _headers(headers))
        for t, p, o, ts, key, value, headers in found
    ]


def entries(conn: sqlite3.Connection) -> list[ParkedEntry]:
    """Every parked record as an operator is shown it, by position; nothing is dropped."""
    found = conn.execute(
        "SELECT topic, kafka_partition, kafka_offset, parked_at, headers FROM parked "
        "ORDER BY topic, kafka_partition, kafka_offset"
    ).fetchall()
    return [ParkedEntry(t, p, o, at, _signer(_headers(h))) for t, p, o, at, h in found]


def _signer(headers: Sequence[tuple[str, bytes]]) -> str | None:
    bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER]
    if len(bundles) != 1:
        return None
    try:
        return claimed_signer(bundles[0])[1]
    except EnvelopeError:
        return None


def take(
    conn: sqlite3.Connection, positions: Iterable[tuple[str, int, int]] | None
) -> list[tuple[str, int, int]]:
    """Delete the parked records at ``positions`` (every one for ``None``); the positions
    actually deleted, by position."""
    if positions is None:
        found = conn.execute(
            "DELETE FROM parked RETURNING topic, kafka_partition, kafka_offset"
        ).fetchall()
    else:
        found = [
            row
            for position in dict.fromkeys(positions)
            for row in conn.execute(
                "DELETE FROM parked WHERE topic = ? AND kafka_partition = ? "
                "AND kafka_offset = ? RETURNING topic, kafka_partition, kafka_offset",
                position,
            ).fetchall()
        ]
    return sorted((str(t), int(p), int(o)) for t, p, o in found)


def _headers(stored: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, base64.b64decode(v)) for k, v in json.loads(stored))


def delete(conn: sqlite3.Connection, positions: Iterable[tuple[str, int, int]]) -> None:
    conn.executemany(
        "DELETE FROM parked WHERE topic = ? AND kafka_partition = ? AND kafka_offset = ?",
        list(positions),
    )


async def ours(
    rows: list[ParkedRecord], consumer: Consumer, assigned: set[TopicPartition]
) -> tuple[list[ParkedRecord], list[tuple[str, int, int]]]:
    """The parked records this consumer is to retry: those on partitions it is assigned
    (another process sharing the replay file retries its own), before its position on that
    partition. And the positions it is past: the group was rewound before them, so Kafka
    hands them over again at their own position (parking them again if they still do not
    open), and the parked copy is dropped rather than handed over too."""
    mine = [m for m in rows if TopicPartition(m.topic, m.partition) in assigned]
    ahead = {
        tp: await consumer.position(tp)
        for tp in {TopicPartition(m.topic, m.partition) for m in mine}
    }
    keep, again = [], []
    for msg in mine:
        if msg.offset >= ahead[TopicPartition(msg.topic, msg.partition)]:
            log.info("parked_record_read_again", partition=msg.partition, offset=msg.offset)
            again.append(msg.position)
        else:
            keep.append(msg)
    return keep, again


def holds(conn: sqlite3.Connection, position: tuple[str, int, int]) -> bool:
    """Whether the record at ``position`` is still parked (not handled since it was read)."""
    return (
        conn.execute(
            "SELECT 1 FROM parked WHERE topic = ? AND kafka_partition = ? AND kafka_offset = ?",
            position,
        ).fetchone()
        is not None
    )


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM parked").fetchone()[0])


class KeystoreWatch:
    """When to try the parked records again: on start, and once the keystore has changed
    (a key imported or restored), looked at no more than once a second (a file keystore
    reads its directory again as often)."""

    def __init__(self, keys: KeyStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._clock = clock
        self._seen: frozenset[tuple[str, str, float | None]] | None = None
        self._looked = -_LOOK_EVERY

    def due(self) -> bool:
        now = self._clock()
        if self._seen is not None and now - self._looked < _LOOK_EVERY:
            return False
        self._looked = now
        seen = self._state()
        if seen == self._seen:
            return False
        self._seen = seen
        return True

    def parked(self) -> None:
        """A record was parked under the keystore as it is now: not due until it changes."""
        if self._seen is None:
            self._seen = self._state()

    def again(self) -> None:
        """Due at the next look, changed or not."""
        self._seen = None

    def _state(self) -> frozenset[tuple[str, str, float | None]]:
        return frozenset(
            (k.key_id, k.status.value, None if k.not_after is None else k.not_after.timestamp())
            for k in self._keys.keys()  # noqa: SIM118  # a keystore, not a dict
        )
