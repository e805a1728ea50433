"""Parked deliveries are handed over exactly once: only a record handed over is forgotten
when committed, a parked copy of a record Kafka hands over again is not handed over too, and
processes sharing one replay file retry only the partitions each is assigned."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.errors import CommitFailedError

from broker.config import KemSuite
from broker.envelope import KeyPurpose
from broker.errors import RecordKeyUnavailable, TransportError
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.sdk import SqliteReplayMemory
from tests.unit.sdk.keyworld import GROUP, TOPIC, FakeKafka, Msg, eid, opened, sealed, subscriber
from tests.unit.sdk.test_subscriber_parked import World


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # The keystore and the subscriber look at most once a second; a test need not wait.
    monkeypatch.setattr("broker.keys._store._REFRESH_SECONDS", 0.0)
    monkeypatch.setattr("broker.sdk._parked._LOOK_EVERY", 0.0)
    return World(tmp_path)


def _three_parked(w: World) -> list[Msg]:
    return [
        sealed(w.new, eid(2), 0),
        sealed(w.new, eid(3), 1),
        sealed(w.new, eid(5), 2),
        sealed(w.old, eid(1), 3),
    ]


async def test_a_loop_stopped_after_the_first_of_several_parked_records_loses_none_of_the_rest(
    world: World,
) -> None:
    """Three parked, imported: the loop hands over the first and the second, then the process
    stops without committing; after the restart the second and third come again, once."""
    kafka = FakeKafka(_three_parked(world))
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        records = aiter(sub)
        assert (await asyncio.wait_for(anext(records), 5)).message.event_id == eid(1)
        assert sub.parked == 3
        world.import_directory()
        assert (await asyncio.wait_for(anext(records), 5)).message.event_id == eid(2)
        assert (await asyncio.wait_for(anext(records), 5)).message.event_id == eid(3)
        assert sub.parked == 2  # only the first, handed over and committed, is forgotten
    for expected in ([eid(3), eid(5)], []):
        again = FakeKafka(_three_parked(world))
        again.fake.next_offset = 4  # the group's committed offset
        async with subscriber(FileKeyStore(world.tmp / "hub"), again, world.tmp) as sub:
            assert opened(await sub.poll(0)) == expected


async def test_a_rewound_group_gets_a_parked_record_once_from_kafka_not_twice(
    world: World,
) -> None:
    """Parked at offset 0, the group reset to 0 (``accord desk reset-offsets``), the keys
    imported: the first poll hands over each record once."""
    records = [sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)]
    async with subscriber(world.hub, FakeKafka(records), world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        assert sub.parked == 1
    memory = SqliteReplayMemory(world.tmp / "replay.sqlite3", group=GROUP)
    memory.rewound(TOPIC, 0, 0)
    memory.close()
    world.import_directory()
    async with subscriber(FileKeyStore(world.tmp / "hub"), FakeKafka(records), world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(2), eid(1)]
        assert sub.parked == 0
        assert sub.unopenable == []


async def test_a_rewound_group_read_with_async_for_gets_a_parked_record_once(
    world: World,
) -> None:
    """The loop retries parked records before Kafka hands the rewound ones over: one Kafka
    will hand over again is left to Kafka."""
    records = [sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)]
    async with subscriber(world.hub, FakeKafka(records), world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
    memory = SqliteReplayMemory(world.tmp / "replay.sqlite3", group=GROUP)
    memory.rewound(TOPIC, 0, 0)
    memory.close()
    world.import_directory()
    got = []
    async with subscriber(FileKeyStore(world.tmp / "hub"), FakeKafka(records), world.tmp) as sub:
        loop = aiter(sub)
        got = [(await asyncio.wait_for(anext(loop), 5)).message.event_id for _ in range(2)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(loop), 0.3)
    assert got == [eid(2), eid(1)]


def test_a_parked_copy_is_refused_as_a_replay_once_its_kafka_copy_was_opened_and_committed(
    world: World,
) -> None:
    memory = SqliteReplayMemory(world.tmp / "replay.sqlite3", group=GROUP)
    memory.park(Msg(0, b"sealed", []))
    assert memory.admit(eid(1), topic=TOPIC, partition=0, offset=0)  # read again from Kafka
    memory.committed(TOPIC, 0, 1)
    assert not memory.admit(eid(1), topic=TOPIC, partition=0, offset=0, parked=True)
    memory.close()


async def test_two_subscribers_sharing_a_replay_file_each_retry_only_their_own_partitions(
    world: World,
) -> None:
    """A parked record on partition 0 is handed over by the process assigned partition 0
    only."""
    records = [sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)]
    async with subscriber(world.hub, FakeKafka(records), world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
    world.import_directory()
    holder, other = FakeKafka(records), FakeKafka(records)
    holder.fake.next_offset = other.fake.next_offset = 2
    other.fake.assigned = {TopicPartition(TOPIC, 1)}
    async with (
        subscriber(FileKeyStore(world.tmp / "hub"), other, world.tmp) as second,
        subscriber(FileKeyStore(world.tmp / "hub"), holder, world.tmp) as first,
    ):
        assert opened(await second.poll(0)) == []
        assert opened(await first.poll(0)) == [eid(2)]
        assert opened(await second.poll(0)) == []


async def test_a_held_record_does_not_undo_a_parked_record_handed_over_awaiting_commit(
    world: World,
) -> None:
    """poll(commit=False) hands over a parked record; the next poll stops on a held record;
    commit() still forgets the parked record handed over."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        world.import_directory()
        assert opened(await sub.poll(0, commit=False)) == [eid(2)]
        [old] = [k for k in world.hub.keys("hub-a") if k.purpose is KeyPurpose.ENCRYPT]
        world.hub.rotate("hub-a", kem=KemSuite.X25519, grace=timedelta(days=7))
        world.hub.revoke(old.key_id)
        kafka.fake.records.append(sealed(world.old, eid(3), 2))  # sealed to the revoked key
        with pytest.raises(RecordKeyUnavailable):
            await sub.poll(0)
        await sub.commit()
        assert sub.parked == 0


async def _refused() -> None:
    raise CommitFailedError("the group rebalanced")


async def test_a_failed_commit_keeps_a_parked_record_handed_over_for_the_next(
    world: World,
) -> None:
    """poll(commit=False) hands over a parked record and a new one; Kafka refuses the commit:
    the parked record stays parked (a crash now brings it again), and the next commit that
    Kafka confirms forgets it."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        world.import_directory()
        kafka.fake.records.append(sealed(world.old, eid(3), 2))
        assert opened(await sub.poll(0, commit=False)) == [eid(2), eid(3)]
        kafka.fake.commit_fault = _refused
        with pytest.raises(TransportError, match="nothing is counted as committed"):
            await sub.commit()
        assert sub.parked == 1
        kafka.fake.commit_fault = None
        await sub.commit()
        assert sub.parked == 0


async def test_a_parked_record_whose_commit_failed_comes_again_after_a_restart(
    world: World,
) -> None:
    """The same failed commit, then the process stops: the parked record is handed over
    again at the next start, once."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        world.import_directory()
        kafka.fake.records.append(sealed(world.old, eid(3), 2))
        kafka.fake.commit_fault = _refused
        with pytest.raises(TransportError):
            await sub.poll(0)
    # The group's committed offset: the failed commit left it at 2; the next one took it to 3.
    for committed, expected in ((2, [eid(2), eid(3)]), (3, [])):
        again = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
        again.fake.records.append(sealed(world.old, eid(3), 2))
        again.fake.next_offset = committed
        async with subscriber(FileKeyStore(world.tmp / "hub"), again, world.tmp) as sub:
            assert opened(await sub.poll(0)) == expected
