"""What an operator is shown of the parked records, and dropping them on purpose: where each
was, when it was parked and the signer key id it claims, never its value; a drop is logged
as the bounds' drops are, naming the place only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.keys import FileKeyStore
from broker.sdk import SqliteReplayMemory
from tests.unit.sdk.keyworld import GROUP, TOPIC, FakeKafka, Msg, eid, opened, sealed, subscriber
from tests.unit.sdk.test_subscriber_parked import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _memory(path: Path, at: datetime) -> SqliteReplayMemory:
    return SqliteReplayMemory(path, group=GROUP, clock=lambda: at)


def _signer(keys: FileKeyStore) -> str:
    return keys.signing_key("worker").key_id


def test_entries_name_place_time_and_claimed_signer_and_nothing_of_the_value(
    world: World,
) -> None:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    memory = _memory(world.tmp / "replay.sqlite3", at)
    memory.park(sealed(world.new, eid(2), 4))
    memory.park(Msg(1, b"not a sealed record", []))
    entries = memory.parked_entries()
    assert [(e.position, e.parked_at, e.signer_key_id) for e in entries] == [
        ((TOPIC, 0, 1), at.timestamp(), None),
        ((TOPIC, 0, 4), at.timestamp(), _signer(world.new)),
    ]
    assert not hasattr(entries[0], "value")
    memory.close()


def test_listing_drops_nothing_even_past_the_bounds(world: World) -> None:
    """The bounds apply when the subscriber looks; an operator's look changes nothing."""
    path = world.tmp / "replay.sqlite3"
    memory = _memory(path, datetime.now(UTC) - timedelta(days=40))
    memory.park(sealed(world.new, eid(2), 0))
    memory.close()
    memory = _memory(path, datetime.now(UTC))
    assert len(memory.parked_entries()) == 1
    assert memory.parked_count == 1
    memory.close()


def test_a_dropped_record_is_gone_counted_and_logged_by_place_only(world: World) -> None:
    memory = _memory(world.tmp / "replay.sqlite3", datetime.now(UTC))
    for offset in (0, 1):
        memory.park(sealed(world.new, eid(offset), offset))
    with capture_logs() as logs:
        memory.drop_parked([(TOPIC, 0, 1)])
    assert [e.offset for e in memory.parked_entries()] == [0]
    assert memory.parked_count == 1
    assert logs == [
        {
            "event": "parked_record_dropped",
            "log_level": "error",
            "topic": TOPIC,
            "partition": 0,
            "offset": 1,
            "why": "dropped by an operator",
        }
    ]
    # Dropped, it is no longer handed over: a parked copy not held is a replay.
    assert not memory.admit(eid(1), topic=TOPIC, partition=0, offset=1, parked=True)
    memory.close()


async def test_a_running_subscriber_counts_again_what_an_operator_dropped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``accord desk parked --drop-all`` while the desk runs: its count (the desk's banner
    and gauge) says none are parked after its next poll, without a restart."""
    monkeypatch.setattr("broker.sdk._parked_retry._RECOUNT_EVERY", 0.0)
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        assert sub.parked == 1
        operator = SqliteReplayMemory(world.tmp / "replay.sqlite3", group=GROUP)
        operator.drop_parked([(TOPIC, 0, 0)])
        operator.close()
        assert opened(await sub.poll(0)) == []
        assert sub.parked == 0
