"""The replay memory's file format: its sightings are found by the key (event id first), a
file of today's unreleased format 2 is migrated to it, and a file a newer SDK wrote or
migrated is refused in words that name the upgrade."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.sdk import SqliteReplayMemory
from broker.sdk._replay import _SEEN
from tests.unit.sdk.test_replay_memory import EVENT, TOPIC, _close_memories, at, memory

__all__ = ["_close_memories"]  # a fixture, used by name

# Not a scan: a scan of the whole table under the write lock took 22 ms per record at 200,000
# rows, where a subscriber must keep up with 500 records/s.
_BY_KEY = re.compile(r"SEARCH opened USING PRIMARY KEY \(event_id=\?")


def _plan(m: SqliteReplayMemory, sender: str) -> list[str]:
    rows = m._conn.execute(f"EXPLAIN QUERY PLAN {_SEEN}", (EVENT, sender, sender)).fetchall()
    return [str(row[3]) for row in rows]


def _format_2(path: Path) -> None:
    """A memory as this morning's SDK left it: keyed (sender, event_id), two sightings."""
    memory(path).close()
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        DROP TABLE opened;
        CREATE TABLE opened (
            sender TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL,
            first_opened REAL NOT NULL, PRIMARY KEY (sender, event_id)
        ) WITHOUT ROWID;
        CREATE INDEX opened_by_age ON opened (first_opened);
        PRAGMA user_version = 2;
        """
    )
    conn.executemany(
        "INSERT INTO opened VALUES (?, ?, ?, 0, ?, strftime('%s', 'now'))",
        [("wmp", EVENT, TOPIC, 4), ("", "e2", TOPIC, 6)],
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("sender", ["wmp", ""])
def test_a_sighting_is_looked_up_by_the_key_not_by_a_scan(tmp_path: Path, sender: str) -> None:
    plan = _plan(memory(tmp_path / "replay.sqlite3"), sender)
    assert len(plan) == 1, plan
    assert _BY_KEY.match(plan[0]), plan


def test_a_format_2_memory_is_migrated_to_the_key_keeping_its_sightings(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    _format_2(path)
    m = memory(path)
    assert len(m) == 2
    assert _BY_KEY.match(_plan(m, "wmp")[0])
    assert not m.admit(EVENT, **at(0, 9), sender="wmp")  # a copy of what it remembered
    assert m.admit(EVENT, **at(0, 5), sender="hv-sandwell")  # another agency's record
    assert not m.admit("e2", **at(0, 7), sender="wmp")  # format 1's: any sender's
    # A process of format 2 still running writes its rows by position: the columns kept
    # their order, so its sender and event id land where this format reads them.
    other = sqlite3.connect(path)
    try:
        assert other.execute("PRAGMA user_version").fetchone()[0] == 3
        other.execute(
            "INSERT INTO opened VALUES (?, ?, ?, 0, 8, strftime('%s', 'now'))",
            ("wmp", "e3", TOPIC),
        )
        other.commit()
    finally:
        other.close()
    assert not m.admit("e3", **at(0, 10), sender="wmp")


def test_a_memory_of_a_newer_format_is_refused_naming_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    memory(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="format 4, written by a newer Accord SDK; this one "
                       "reads up to format 3: upgrade it"):  # fmt: skip
        memory(path)


def test_a_process_running_when_a_newer_sdk_migrated_its_file_is_told_to_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / "replay.sqlite3"
    m = memory(path)
    assert m.admit(EVENT, **at(0, 4), sender="wmp")
    newer = sqlite3.connect(path)
    newer.executescript(
        """
        DROP TABLE opened;
        CREATE TABLE opened (
            sender TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL,
            kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL,
            first_opened REAL NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (event_id, sender)
        ) WITHOUT ROWID;
        PRAGMA user_version = 4;
        """
    )
    newer.close()
    with pytest.raises(ConfigError) as refused:
        m.admit("e2", **at(0, 5), sender="wmp")
    assert str(refused.value) == (
        f"replay memory {path} cannot be written: a newer Accord SDK made it format 4 while "
        "this process ran; this one writes format 3: stop it and upgrade it"
    )
