"""What a recipient has opened, remembered across restarts: the subscriber's replay memory.

Per delivered record, named by its event id and the agency that sent the event, it keeps the
Kafka position (topic, partition, offset) where the record was first opened, and when; per
partition, the offset the consumer group has committed up to. Never a payload, a view or
anything about a subject: an event id is a random UUID, and the sending agency a party id. The
same file keeps the parked records (broker.sdk._parked): sealed deliveries waiting for the
broker key that signed them to be imported, ciphertext only.

A record's identity is its sender and event id, not the id alone: an agency chooses its own
ids, and the broker takes each agency's ids apart (its replay check is per ingress topic), so
two agencies' events under one id are two deliveries, both to be opened. A sighting whose
sender is not known (``""``: remembered by a memory of format 1, before senders were kept)
stands for any sender: a record under its id is opened only at that sighting's position.

The rule (``admit``): a record is opened if its (sender, event id) is new, or if it comes
again at the position where it was first opened and that position was never committed. The
latter is a redelivery: the process stopped after opening the record and before committing
its offset, so Kafka hands the same record over again, and refusing it would lose it.
Anything else is a replay: a copy of a genuine sealed record written to the topic again
(another position), or a record the group had already committed handed over again because
the group's offsets went back (reset by an administrator, or expired while the recipient was
away and re-read from the earliest record).
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import quote

from broker.config import default_home
from broker.errors import ConfigError
from broker.kafka import Message
from broker.sdk import _parked
from broker.sdk._client import utcnow
from broker.sdk._parked import PARKED_LIMIT, PARKED_MAX_AGE, ParkedEntry, ParkedRecord
from broker.sdk._replay_file import (
    COLUMNS,
    FORMAT,
    OLD_ROWS,
    SCHEMA,
    VERSION,
    create_private,
    migrate,
)

__all__ = ["DEFAULT_REPLAY_RETENTION", "IN_MEMORY", "SqliteReplayMemory", "default_replay_file"]

#: Sightings older than this are forgotten. Delivery topics keep records for 30 days
#: (``broker/kafka/_admin.py``), so every record Kafka can still hand over, at its own
#: position or after a rewind, is far inside it; the rest covers copies an attacker kept for
#: later re-injection for more than a year. A copy older than the memory is refused by the
#: broker's signing key, not the recipient's own: the subscriber opens what was sealed to its
#: own expired keys (Opener ``expired_own_keys``), but no signature by an expired signing key,
#: so with the broker's keys rotated at least yearly such a copy is refused; and it is skipped
#: (``unknown-signer``), not held as a genuine unread delivery signed by a since-expired key
#: is (broker.sdk._keyholds), since it says it was signed longer ago than this, which no
#: record still on a topic was. One row is about 150 bytes: a million records a year is a
#: file of some 200 MB.
DEFAULT_REPLAY_RETENTION: Final = timedelta(days=400)

#: The path that keeps the memory in this process, for this run only (``replay_memory=None``).
IN_MEMORY: Final = ":memory:"

# Pruning at start bounds the file; a subscriber that runs for months prunes as it goes too.
_PRUNE_EVERY = timedelta(days=1)
#: The sightings a record under ``event_id`` from ``sender`` must match (every one of them):
#: its own, and one made without a sender (format 1's); ``sender`` ``""`` matches them all.
#: The key leads with event_id, so this searches a few rows under the key (a scan of every
#: row, under the write lock, fell behind 500 records/s with 200,000 rows).
_SEEN = (
    "SELECT topic, kafka_partition, kafka_offset FROM opened "
    "WHERE event_id = ? AND (? = '' OR sender IN (?, ''))"
)


class _Default(enum.Enum):
    """``Subscriber(replay_memory=...)`` left out: ``default_replay_file`` of the group."""

    HOME_FILE = "a file under the Accord home"


def default_replay_file(group: str, home: Path | None = None) -> Path:
    """``<home>/sdk/replay-<group>.sqlite3``: one memory per consumer group (the group name
    starts with the party's), escaped so that any group name is one plain file name."""
    return (home or default_home()) / "sdk" / f"replay-{quote(group, safe='')}.sqlite3"


class SqliteReplayMemory:
    """The event ids ``group`` has opened and where, in SQLite (a file, or ``:memory:``).

    The file is created 0600 (its directory, if missing, 0700), in WAL mode with
    ``synchronous=NORMAL``: a sighting is in the file before the record is handed to the
    caller, so it survives the process being killed; an operating-system crash or power loss
    may forget the last moments' sightings. ``FULL`` (an fsync per record) was measured
    first: beside a busy Kafka on the same disk each fsync took ~30 ms, and a subscriber
    fell behind 500 records/s.
    Entries first opened more than ``retention`` ago are pruned when it opens, and daily.
    Several processes may share one file (a transaction per sighting); a problem with the
    file is a ``ConfigError`` naming it.

    For an operator's tool opening a subscriber's memory (``accord desk parked``), which does
    not know the subscriber's retention: ``prune=False`` forgets nothing on opening, and
    ``read_only=True`` changes nothing at all (no file made, no table, no pruning; only
    reading, such as :meth:`parked_entries`, works).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        group: str,
        retention: timedelta = DEFAULT_REPLAY_RETENTION,
        clock: Callable[[], datetime] = utcnow,
        parked_limit: int = PARKED_LIMIT,
        prune: bool = True,
        read_only: bool = False,
    ) -> None:
        if retention <= timedelta(0):
            raise ConfigError("the replay memory's retention must be positive")
        self.where = str(path)
        self.in_memory = self.where == IN_MEMORY
        self._retention = retention.total_seconds()
        self._parked_limit = parked_limit
        self._parked = 0
        self._clock = clock
        if read_only and self.in_memory:
            raise ConfigError("a replay memory kept in memory cannot be read only")
        with self._translated("cannot be opened"):
            if read_only:
                uri = f"{Path(path).absolute().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                if not self.in_memory:
                    create_private(Path(path))
                # Autocommit: each sighting is one explicit transaction, durable when it
                # returns.
                self._conn = sqlite3.connect(self.where, isolation_level=None)
        try:
            with self._translated("cannot be used"):
                self._conn.execute("PRAGMA busy_timeout = 10000")
                if read_only:
                    self._check(int(self._conn.execute("PRAGMA user_version").fetchone()[0]), group)
                else:
                    self._conn.execute("PRAGMA journal_mode = WAL")
                    self._conn.execute("PRAGMA synchronous = NORMAL")
                    self._prepare(group)
                # A memory from before parking, read only, has no table of parked records.
                self._has_parked = (
                    not read_only
                    or self._conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'parked'"
                    ).fetchone()
                    is not None
                )
                self._parked = _parked.count(self._conn) if self._has_parked else 0
                self._last_prune = self._now()
                if prune and not read_only:
                    self._prune(self._last_prune)
        except BaseException:
            self._conn.close()
            raise

    def admit(
        self,
        event_id: str,
        *,
        topic: str,
        partition: int,
        offset: int,
        parked: bool = False,
        sender: str = "",
    ) -> bool:
        """``True`` for a first sighting or an uncommitted redelivery at the first position
        (remembering the first); ``False`` for a replay.

        ``sender``: the agency whose event the record delivers (the delivery's view names it,
        under the broker's signature); another agency's record under the same event id is
        another record. ``""`` (not known) matches every sender's sighting of the id, and
        every sighting of the id matches one made without a sender (format 1's).

        ``parked``: the record comes from the parked records, at its own position, which was
        committed past when it was parked; it counts as uncommitted while it is still parked
        (it is removed only once handled, :meth:`unpark`), checked in the same transaction.
        Gone from the parked records, it was handled already (its copy read from Kafka after
        a rewind, or handed over by another process sharing the file): a replay. Read from
        Kafka instead, a parked record at the same position is removed: it is handed over
        now."""
        now = self._now()
        with self._translated("cannot be written"), self._tx():
            if now - self._last_prune >= _PRUNE_EVERY.total_seconds():
                self._prune(now)
                self._last_prune = now
            if not parked and self._parked:
                _parked.delete(self._conn, [(topic, partition, offset)])
            found = self._admits(event_id, sender, (topic, partition, offset), parked=parked)
            if found is None:
                self._conn.execute(
                    # Columns named: a later format adding one leaves this process working.
                    f"INSERT INTO opened ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608  # constants only
                    (sender, event_id, topic, partition, offset, now),
                )
                return True
            return found

    def would_admit(
        self, event_id: str, *, topic: str, partition: int, offset: int, parked: bool = False,
        sender: str = "",
    ) -> bool:  # fmt: skip
        """What :meth:`admit` would answer now, remembering nothing: for a record that is
        not handed over (broker.sdk._keyholds asks whether one it reports is a replay)."""
        with self._translated("cannot be read"):
            found = self._admits(event_id, sender, (topic, partition, offset), parked=parked)
        return found is not False

    def _admits(
        self, event_id: str, sender: str, position: tuple[str, int, int], *, parked: bool
    ) -> bool | None:
        """:meth:`admit`'s answer, changing nothing; None for a first sighting."""
        if parked and not _parked.holds(self._conn, position):
            return False
        seen = self._conn.execute(_SEEN, (event_id, sender, sender)).fetchall()
        if not seen:
            return None
        # Every matching sighting must be this very record, at this very position.
        if any(tuple(first) != position for first in seen):
            return False
        return parked or position[2] >= self._committed_up_to(position[0], position[1])

    def park(self, msg: Message) -> None:
        """Keep ``msg`` until it can be opened (broker.sdk._parked), within the bounds."""
        now = self._now()
        with self._translated("cannot be written"), self._tx():
            _parked.insert(self._conn, msg, now)
            dropped = _parked.bound(
                self._conn, now, limit=self._parked_limit, max_age=PARKED_MAX_AGE
            )
            self._parked = _parked.count(self._conn)
        _parked.log_dropped(dropped)

    def parked(self) -> list[ParkedRecord]:
        """Every parked record, by position; those past the bounds are dropped first."""
        now = self._now()
        with self._translated("cannot be written"), self._tx():
            dropped = _parked.bound(
                self._conn, now, limit=self._parked_limit, max_age=PARKED_MAX_AGE
            )
            self._parked = _parked.count(self._conn)
            found = _parked.rows(self._conn)
        _parked.log_dropped(dropped)
        return found

    def unpark(self, positions: list[tuple[str, int, int]]) -> None:
        """Forget parked records: handed over and handled, or gone past."""
        if not positions:
            return
        with self._translated("cannot be written"), self._tx():
            _parked.delete(self._conn, positions)
            self._parked = _parked.count(self._conn)

    def parked_entries(self) -> list[ParkedEntry]:
        """Every parked record as an operator is shown it (``accord desk parked``): where it
        was, when it was parked, the signer its bundle claims; never its value."""
        if not self._has_parked:
            return []
        with self._translated("cannot be read"):
            return _parked.entries(self._conn)

    def drop_parked(
        self, positions: list[tuple[str, int, int]] | None = None
    ) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
        """Drop parked records on an operator's word (every one for ``None``), each logged as
        ``parked_record_dropped``: lost for good if they were genuine. What was dropped, and
        the positions given that were not parked: if any, nothing is dropped. Checked and
        dropped in one transaction, so a subscriber handing one over meanwhile (sharing the
        file) is not reported as dropped; logged once it is over."""
        with self._translated("cannot be written"), self._tx():
            missing = [p for p in positions or [] if not _parked.holds(self._conn, p)]
            dropped = [] if missing else _parked.take(self._conn, positions)
            self._parked = _parked.count(self._conn)
        _parked.log_dropped([(p, "dropped by an operator") for p in dropped])
        return dropped, missing

    def recount_parked(self) -> int:
        """How many records are parked now, as another process may have changed it (an
        operator's drop, ``accord desk parked --drop``)."""
        with self._translated("cannot be read"):
            self._parked = _parked.count(self._conn)
        return self._parked

    @property
    def parked_count(self) -> int:
        """How many records are parked (as of this process's last look)."""
        return self._parked

    def committed(self, topic: str, partition: int, next_offset: int) -> None:
        """The group committed ``partition`` up to ``next_offset`` (the next to read): records
        below it were handled and are never admitted again."""
        with self._translated("cannot be written"), self._tx():
            # A rewound group must not lower the mark: that is the rewind it guards against.
            self._conn.execute(
                "INSERT INTO committed VALUES (?, ?, ?) ON CONFLICT (topic, kafka_partition) "
                "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                (topic, partition, next_offset),
            )

    def committed_up_to(self, topic: str, partition: int) -> int:
        """The mark of ``partition``: the offset from which its records count as never
        committed (the next to read, as :meth:`committed` is given it). A record first opened
        below it is not admitted again (unless handed over from the parked records,
        :meth:`admit`); one at or above it is, at its own position. 0 for a partition with no
        commit remembered. Opening, parking and unparking records leave it alone;
        :meth:`committed` only raises it, :meth:`rewound` only lowers it. Reads only, so a
        memory opened ``read_only`` answers it. For a tool that sets marks back and may have
        to put them back as they were (``accord desk reset-offsets``)."""
        with self._translated("cannot be read"):
            return self._committed_up_to(topic, partition)

    def rewound(self, topic: str, partition: int, next_offset: int) -> None:
        """An administrator set the group's offset of ``partition`` back to ``next_offset``
        on purpose (``accord desk reset-offsets``: the recipient's store was lost or restored
        older): records first opened at or after it are admitted again at their own position,
        as redeliveries. A copy of one at another position is still a replay."""
        with self._translated("cannot be written"), self._tx():
            self._conn.execute(
                "UPDATE committed SET next_offset = min(next_offset, ?) "
                "WHERE topic = ? AND kafka_partition = ?",
                (next_offset, topic, partition),
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM opened").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def _prepare(self, group: str) -> None:
        with self._tx():
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                if self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise ConfigError(f"replay memory {self.where} is another program's database")
                # One statement at a time: executescript would commit the open transaction.
                for statement in filter(str.strip, SCHEMA.split(";")):
                    self._conn.execute(statement)
                self._conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("group", group)]
                )
                self._conn.execute(_parked.SCHEMA)
                self._conn.execute(f"PRAGMA user_version = {VERSION}")
                return
            self._check(version, group)
            if version in OLD_ROWS:
                for statement in migrate(version):
                    self._conn.execute(statement)
            self._conn.execute(_parked.SCHEMA)  # a memory from before parking gains the table

    def _check(self, version: int, group: str) -> None:
        """That the file is a replay memory of this format, and ``group``'s."""
        if version == 0:
            raise ConfigError(f"replay memory {self.where} is not a replay memory yet")
        tables = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        meta = (
            dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            if self._conn.execute(tables).fetchone()
            else {}
        )
        if meta.get("format") != FORMAT:
            raise ConfigError(f"replay memory {self.where} is another program's database")
        if version > VERSION:
            raise ConfigError(
                f"replay memory {self.where} is format {version}, written by a newer Accord "
                f"SDK; this one reads up to format {VERSION}: upgrade it (every process "
                "sharing the file)"
            )
        if version != VERSION and version not in OLD_ROWS:  # those migrate when written
            raise ConfigError(
                f"replay memory {self.where} is format {version}; this SDK reads {VERSION}"
            )
        if meta.get("group") != group:
            # Positions and commits are the group's own: another group's would refuse
            # records this one never opened.
            raise ConfigError(
                f"replay memory {self.where} belongs to consumer group {meta.get('group')}, "
                f"not {group}"
            )

    def _committed_up_to(self, topic: str, partition: int) -> int:
        """:meth:`committed_up_to`, untranslated: for a caller already inside a transaction
        whose errors it translates in its own words (:meth:`admit`'s "cannot be written")."""
        row = self._conn.execute(
            "SELECT next_offset FROM committed WHERE topic = ? AND kafka_partition = ?",
            (topic, partition),
        ).fetchone()
        return int(row[0]) if row else 0

    def _prune(self, now: float) -> None:
        self._conn.execute("DELETE FROM opened WHERE first_opened < ?", (now - self._retention,))

    def _now(self) -> float:
        return self._clock().timestamp()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        # IMMEDIATE: a second process sharing the file waits here, so read-then-insert is one
        # step and two processes cannot both see a first sighting.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if (newer := self._newer_format()) is not None:
                # SQLite's own words (a column count, a constraint) would not say that
                # the fix is an upgrade.
                detail = (
                    f"a newer Accord SDK made it format {newer} while this process ran; this "
                    f"one writes format {VERSION}: stop it and upgrade it"
                )
            raise ConfigError(f"replay memory {self.where} {what}: {detail}") from exc

    def _newer_format(self) -> int | None:
        """The file's format, if a newer SDK migrated it since this process opened it."""
        conn: sqlite3.Connection | None = getattr(self, "_conn", None)  # None while opening
        if conn is None:
            return None
        with contextlib.suppress(sqlite3.Error):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > VERSION:
                return version
        return None
