"""Dropping parked records, by the bounds or on an operator's word: checked and deleted in one
transaction, only what was deleted reported, and logged once the file's write lock is free;
and the operator's read-only view of a subscriber's memory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.sdk import SqliteReplayMemory
from tests.unit.sdk.keyworld import GROUP, TOPIC, eid, sealed
from tests.unit.sdk.test_subscriber_parked import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _parked(world: World, offsets: list[int], **kw: int) -> tuple[Path, SqliteReplayMemory]:
    path = world.tmp / "replay.sqlite3"
    memory = SqliteReplayMemory(path, group=GROUP, **kw)
    for offset in offsets:
        memory.park(sealed(world.new, eid(offset), offset))
    return path, memory


class _LockWatch:
    """Stands in for the module's logger: notes, for each drop logged, whether another
    process could take the file's write lock at that moment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.free: list[tuple[int, bool]] = []

    def error(self, event: str, **kw: object) -> None:
        assert event == "parked_record_dropped"
        other = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            free = True
        except sqlite3.OperationalError:
            free = False
        finally:
            other.close()
        self.free.append((int(str(kw["offset"])), free))


def test_a_drop_by_the_bounds_is_logged_once_the_write_lock_is_free(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, memory = _parked(world, [1, 2], parked_limit=2)
    watch = _LockWatch(path)
    monkeypatch.setattr("broker.sdk._parked.log", watch)
    memory.park(sealed(world.new, eid(3), 3))
    memory.close()
    assert watch.free == [(1, True)]


def test_an_operators_drop_is_logged_once_the_write_lock_is_free(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, memory = _parked(world, [1, 3])
    watch = _LockWatch(path)
    monkeypatch.setattr("broker.sdk._parked.log", watch)
    assert memory.drop_parked() == ([(TOPIC, 0, 1), (TOPIC, 0, 3)], [])
    memory.close()
    assert watch.free == [(1, True), (3, True)]


def test_a_drop_reports_only_what_it_deleted_not_what_another_process_handed_over(
    world: World,
) -> None:
    """A subscriber sharing the file handed the record at offset 1 over (and forgot it) after
    the operator's memory was opened: dropping all reports only offset 3; naming offset 1
    drops nothing and says it is not parked."""
    path, operator = _parked(world, [1, 3, 5])
    subscriber = SqliteReplayMemory(path, group=GROUP)
    subscriber.unpark([(TOPIC, 0, 1)])
    assert operator.drop_parked([(TOPIC, 0, 1), (TOPIC, 0, 3)]) == ([], [(TOPIC, 0, 1)])
    assert [e.offset for e in operator.parked_entries()] == [3, 5]
    assert operator.drop_parked() == ([(TOPIC, 0, 3), (TOPIC, 0, 5)], [])
    assert subscriber.recount_parked() == 0
    operator.close()
    subscriber.close()


def test_a_read_only_memory_reads_parked_records_and_writes_nothing(world: World) -> None:
    path, memory = _parked(world, [4])
    memory.close()
    read_only = SqliteReplayMemory(path, group=GROUP, read_only=True)
    try:
        assert [e.offset for e in read_only.parked_entries()] == [4]
        with pytest.raises(ConfigError, match="cannot be written"):
            read_only.unpark([(TOPIC, 0, 4)])
    finally:
        read_only.close()


def test_a_read_only_memory_from_before_parking_has_nothing_parked(world: World) -> None:
    path, memory = _parked(world, [])
    memory.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE parked")
    conn.commit()
    conn.close()
    read_only = SqliteReplayMemory(path, group=GROUP, read_only=True)
    try:
        assert read_only.parked_entries() == []
        assert read_only.parked_count == 0
    finally:
        read_only.close()


@pytest.mark.parametrize("where", ["another-group", "not-a-memory", "missing"])
def test_a_read_only_memory_is_refused_unless_it_is_the_groups(world: World, where: str) -> None:
    path = world.tmp / "replay.sqlite3"
    if where == "another-group":
        SqliteReplayMemory(path, group="hub-a.other").close()
    elif where == "not-a-memory":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE x (a)")
        conn.close()
    with pytest.raises(ConfigError, match=r"replay memory .*replay\.sqlite3"):
        SqliteReplayMemory(path, group=GROUP, read_only=True)
    assert path.exists() == (where != "missing")
