"""The replay memory's public read of a partition's mark, ``committed_up_to``: what it means
(the offset from which records count as never committed), what moves it and what does not,
and that an operator's tool (``accord desk reset-offsets``) can read it from a file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.sdk import SqliteReplayMemory
from tests.unit.sdk.keyworld import GROUP, TOPIC, Msg, eid

OTHER_TOPIC = "accord.deliver.hub-b"


@pytest.fixture
def memory() -> Iterator[SqliteReplayMemory]:
    m = SqliteReplayMemory(":memory:", group=GROUP)
    yield m
    m.close()


def test_a_partition_never_committed_is_at_zero(memory: SqliteReplayMemory) -> None:
    assert memory.committed_up_to(TOPIC, 0) == 0
    memory.committed(TOPIC, 0, 12)
    # Another partition, or the same partition of another topic, is a mark of its own.
    assert memory.committed_up_to(TOPIC, 1) == 0
    assert memory.committed_up_to(OTHER_TOPIC, 0) == 0


def test_opening_and_parking_records_do_not_move_the_mark(memory: SqliteReplayMemory) -> None:
    assert memory.admit(eid(1), topic=TOPIC, partition=0, offset=5)
    memory.park(Msg(6, b"sealed to a key not yet imported", []))
    assert memory.committed_up_to(TOPIC, 0) == 0
    memory.committed(TOPIC, 0, 7)
    memory.park(Msg(9, b"another", []))
    memory.unpark([(TOPIC, 0, 6)])
    assert memory.committed_up_to(TOPIC, 0) == 7


def test_a_commit_only_raises_the_mark_and_a_rewind_only_lowers_it(
    memory: SqliteReplayMemory,
) -> None:
    memory.committed(TOPIC, 0, 8)
    assert memory.committed_up_to(TOPIC, 0) == 8
    memory.committed(TOPIC, 0, 3)  # the group rewound under the subscriber: not followed
    assert memory.committed_up_to(TOPIC, 0) == 8
    memory.rewound(TOPIC, 0, 20)
    assert memory.committed_up_to(TOPIC, 0) == 8
    memory.rewound(TOPIC, 0, 3)
    assert memory.committed_up_to(TOPIC, 0) == 3


def test_the_mark_is_where_a_redelivery_stops_being_admitted(memory: SqliteReplayMemory) -> None:
    """Exclusive: committed up to 8 is offsets 0..7 handled, 8 onwards not."""
    for offset in (7, 8):
        assert memory.admit(eid(offset), topic=TOPIC, partition=0, offset=offset)
    memory.committed(TOPIC, 0, 8)
    mark = memory.committed_up_to(TOPIC, 0)
    assert not memory.would_admit(eid(7), topic=TOPIC, partition=0, offset=mark - 1)
    assert memory.would_admit(eid(8), topic=TOPIC, partition=0, offset=mark)


def test_a_file_opened_read_only_answers_the_marks_it_keeps(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    writer = SqliteReplayMemory(path, group=GROUP)
    writer.committed(TOPIC, 2, 41)
    writer.close()
    reader = SqliteReplayMemory(path, group=GROUP, read_only=True)
    try:
        assert (reader.committed_up_to(TOPIC, 2), reader.committed_up_to(TOPIC, 0)) == (41, 0)
    finally:
        reader.close()


def test_a_file_that_cannot_be_read_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite3"
    memory = SqliteReplayMemory(path, group=GROUP)
    try:
        spoiler = sqlite3.connect(path)
        spoiler.execute("DROP TABLE committed")
        spoiler.commit()
        spoiler.close()
        with pytest.raises(ConfigError, match=f"replay memory {path} cannot be read"):
            memory.committed_up_to(TOPIC, 0)
    finally:
        memory.close()
