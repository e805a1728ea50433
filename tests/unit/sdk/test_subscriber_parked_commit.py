"""Parked deliveries and commits that fail: a batch ``poll`` could not commit is never lost
(its parked records stay parked, its fresh ones are read again), a parked record handed over
and not yet committed is not handed over again by a retry, and a partition moved to another
process sharing the replay file brings its parked records with it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError

from broker.errors import ConfigError, TransportError
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from tests.unit.sdk.keyworld import TOPIC, FakeKafka, eid, opened, sealed, subscriber
from tests.unit.sdk.test_subscriber_parked import World


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # The keystore and the subscriber look at most once a second; a test need not wait.
    monkeypatch.setattr("broker.keys._store._REFRESH_SECONDS", 0.0)
    monkeypatch.setattr("broker.sdk._parked._LOOK_EVERY", 0.0)
    monkeypatch.setattr("broker.sdk._parked_retry._RECOUNT_EVERY", 0.0)
    return World(tmp_path)


async def _refused() -> None:
    raise CommitFailedError("the group rebalanced")


async def _cancelled() -> None:
    raise asyncio.CancelledError


@pytest.mark.parametrize(
    ("fault", "raised"), [(_refused, TransportError), (_cancelled, asyncio.CancelledError)]
)
async def test_a_batch_poll_failed_to_commit_comes_again_parked_and_fresh_alike(
    world: World, fault: object, raised: type[BaseException]
) -> None:
    """The keys imported, poll's own commit refused (or cancelled) after it opened a parked
    record and a fresh one: the caller carries on polling and gets both, once each, and
    nothing stays parked."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    got: list[str] = []
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        got += opened(await sub.poll(0))
        assert sub.parked == 1
        world.import_directory()
        kafka.fake.records.append(sealed(world.old, eid(3), 2))
        kafka.fake.commit_fault = fault  # type: ignore[assignment]
        with pytest.raises(raised):
            await sub.poll(0)
        kafka.fake.commit_fault = None
        kafka.fake.records.append(sealed(world.old, eid(4), 3))
        got += opened(await sub.poll(0))
        got += opened(await sub.poll(0))
        assert sub.parked == 0
        assert sub.unopenable[1:] == []  # the fresh record read again is no replay
    assert got == [eid(1), eid(2), eid(3), eid(4)]
    assert kafka.fake.committed[-1] == 4


async def test_a_parked_record_handed_over_is_not_handed_over_again_before_its_commit(
    world: World,
) -> None:
    """A parked record handed over by ``poll(commit=False)``, its commit refused, and a retry
    due meanwhile (the assignment changed): it is not handed over a second time."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    got: list[str] = []
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        got += opened(await sub.poll(0))
        world.import_directory()
        kafka.fake.records.append(sealed(world.old, eid(3), 2))
        got += opened(await sub.poll(0, commit=False))
        kafka.fake.commit_fault = _refused
        with pytest.raises(TransportError):
            await sub.commit()
        kafka.fake.commit_fault = None
        kafka.fake.assigned = {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}
        got += opened(await sub.poll(0, commit=False))
        await sub.commit()
        assert sub.parked == 0
    assert got == [eid(1), eid(2), eid(3)]


async def test_a_partition_moved_to_a_process_with_nothing_parked_brings_its_parked_records(
    world: World,
) -> None:
    """Two processes share the replay file: A parks a record, the partition moves to B (which
    had parked nothing) and the keys are imported: B hands it over without a restart."""
    records = [sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)]
    a, b = FakeKafka(records), FakeKafka(records)
    b.fake.assigned = set()
    b.fake.next_offset = 2
    async with (
        subscriber(FileKeyStore(world.tmp / "hub"), b, world.tmp) as sb,
        subscriber(world.hub, a, world.tmp) as sa,
    ):
        assert opened(await sb.poll(0)) == []
        assert opened(await sa.poll(0)) == [eid(1)]
        a.fake.assigned = set()
        b.fake.assigned = {TopicPartition(TOPIC, 0)}
        world.import_directory()
        assert opened(await sa.poll(0)) == []
        assert opened(await sb.poll(0)) == [eid(2)]
        assert sb.parked == 0


async def test_the_loop_with_nothing_parked_notices_a_moved_partitions_parked_records(
    world: World,
) -> None:
    """As above, B iterating with ``async for`` and nothing of its own parked: it still looks
    and hands the record over."""
    records = [sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)]
    a, b = FakeKafka(records), FakeKafka(records)
    b.fake.assigned = set()
    b.fake.next_offset = 2
    async with (
        subscriber(FileKeyStore(world.tmp / "hub"), b, world.tmp) as sb,
        subscriber(world.hub, a, world.tmp) as sa,
    ):
        records_b = aiter(sb)
        waiting = asyncio.ensure_future(anext(records_b))
        await asyncio.sleep(0.05)
        assert opened(await sa.poll(0)) == [eid(1)]
        a.fake.assigned = set()
        b.fake.assigned = {TopicPartition(TOPIC, 0)}
        world.import_directory()
        assert (await asyncio.wait_for(waiting, 5)).message.event_id == eid(2)
        await sb.commit()
        assert sb.parked == 0


async def test_a_batch_whose_opening_fails_on_a_busy_replay_memory_comes_again(
    world: World,
) -> None:
    """Another process holds the replay memory's write lock past the timeout while a batch is
    opened: ``poll`` raises ``ConfigError``, and a caller that carries on (the desk) gets the
    whole batch from the next poll, none of it lost or refused as a replay."""
    kafka = FakeKafka([sealed(world.old, eid(1), 0), sealed(world.old, eid(2), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        memory = sub._memory  # a short timeout, not the 10 s, for the test
        assert memory is not None
        memory._conn.execute("PRAGMA busy_timeout = 50")
        opened_first = memory.admit
        calls = 0

        def busy_on_the_second(event_id: str, **kw: Any) -> bool:
            nonlocal calls
            calls += 1
            if calls == 2:
                other = sqlite3.connect(world.tmp / "replay.sqlite3", isolation_level=None)
                other.execute("BEGIN IMMEDIATE")
                try:
                    return opened_first(event_id, **kw)
                finally:
                    other.execute("ROLLBACK")
                    other.close()
            return opened_first(event_id, **kw)

        memory.admit = busy_on_the_second  # type: ignore[method-assign]
        with pytest.raises(ConfigError, match="database is locked"):
            await sub.poll(0, commit=False)
        assert opened(await sub.poll(0, commit=False)) == [eid(1), eid(2)]
        await sub.commit()
        assert sub.unopenable == []
    assert kafka.fake.committed == [2]
