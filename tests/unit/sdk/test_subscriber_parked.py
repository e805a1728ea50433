"""A genuine delivery signed by a broker key the reader has not imported yet is parked, not
lost: committed past (so a forgery stops nobody), kept in the replay memory's file, and
yielded once the key directory is imported, at its own position, once. A forged one stays
parked until the bounds drop it.

The hub's keystore knows only the broker's old signing key; the broker signs with a new one
(a rotation whose import step the hub is late with, or a keystore restored from an older
backup).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import KemSuite
from broker.errors import RecordKeyUnavailable
from broker.keys import FileKeyStore
from broker.sdk import SqliteReplayMemory
from tests.unit.sdk.keyworld import GROUP, TOPIC, FakeKafka, Msg, eid, opened, sealed, subscriber
from tests.unit.sdk.test_subscriber_signers import forged


class World:
    """The hub's keystore, behind with the broker's keys, and both of the broker's."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.hub = FileKeyStore(tmp_path / "hub", create=True)
        self.hub.ensure_party("hub-a", kem=KemSuite.X25519)
        self.old = FileKeyStore(tmp_path / "worker-old", create=True)
        self.old.ensure_party("worker", kem=KemSuite.X25519)
        self.old.replace_public(self.hub.keys("hub-a"))
        self.hub.replace_public(self.old.keys("worker"))
        self.new = FileKeyStore(tmp_path / "worker-new", create=True)
        self.new.ensure_party("worker", kem=KemSuite.X25519)
        self.new.replace_public(self.hub.keys("hub-a"))

    def import_directory(self) -> None:
        """``accord keys import`` in another process: a second handle on the hub's files."""
        other = FileKeyStore(self.tmp / "hub")
        other.replace_public([*self.old.keys("worker"), *self.new.keys("worker")])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    # The keystore and the subscriber look at most once a second; a test need not wait.
    monkeypatch.setattr("broker.keys._store._REFRESH_SECONDS", 0.0)
    monkeypatch.setattr("broker.sdk._parked._LOOK_EVERY", 0.0)
    return World(tmp_path)


def _records(w: World) -> list[Msg]:
    return [
        sealed(w.old, eid(1), 0),
        sealed(w.new, eid(2), 1),
        sealed(w.new, eid(3), 2),
        sealed(w.old, eid(4), 3),
    ]


async def test_deliveries_signed_by_a_key_not_yet_imported_are_parked_then_yielded_once_imported(
    world: World,
) -> None:
    """Committed past, and yielded after the import without a restart, in order of offset,
    each once."""
    kafka = FakeKafka(_records(world))
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        with capture_logs() as logs:
            assert opened(await sub.poll(0)) == [eid(1), eid(4)]
        assert kafka.fake.committed == [4]
        assert [(u.offset, u.reason, u.parked) for u in sub.unopenable] == [
            (1, "unknown-signer", True),
            (2, "unknown-signer", True),
        ]
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["record_parked"] * 2
        assert sub.parked == 2
        assert opened(await sub.poll(0)) == []  # nothing changed: still parked
        world.import_directory()
        assert opened(await sub.poll(0)) == [eid(2), eid(3)]
        assert sub.parked == 0
        world.import_directory()  # the keystore changes again: nothing is yielded twice
        assert opened(await sub.poll(0)) == []


async def test_async_for_yields_a_parked_delivery_once_the_directory_is_imported(
    world: World,
) -> None:
    """Nothing new arrives on the topic: the loop still notices the import."""
    kafka = FakeKafka([sealed(world.new, eid(2), 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        records = aiter(sub)
        assert (await asyncio.wait_for(anext(records), 5)).message.event_id == eid(1)
        assert sub.parked == 1
        world.import_directory()
        assert (await asyncio.wait_for(anext(records), 5)).message.event_id == eid(2)
        await sub.commit()
        assert sub.parked == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(records), 0.3)


async def test_a_forged_record_is_parked_stops_nothing_and_stays_parked_after_an_import(
    world: World,
) -> None:
    kafka = FakeKafka([forged(world.old, 0), sealed(world.old, eid(1), 1)])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
        assert kafka.fake.committed == [2]
        world.import_directory()
        assert opened(await sub.poll(0)) == []
        assert sub.parked == 1


async def test_parked_records_survive_a_restart_and_are_tried_again_at_start(
    world: World,
) -> None:
    kafka = FakeKafka(_records(world))
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(1), eid(4)]
    world.import_directory()
    again = FakeKafka(_records(world))
    again.fake.next_offset = 4  # the group's committed offset
    async with subscriber(FileKeyStore(world.tmp / "hub"), again, world.tmp) as sub:
        assert opened(await sub.poll(0)) == [eid(2), eid(3)]
        assert sub.parked == 0


async def test_a_parked_record_handed_over_but_never_committed_comes_again_after_a_restart(
    world: World,
) -> None:
    """A crash between handing it over and committing: it is handled next time, once."""
    kafka = FakeKafka(_records(world)[:2])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        await sub.poll(0)
        world.import_directory()
        assert opened(await sub.poll(0, commit=False)) == [eid(2)]
    for expected in ([eid(2)], []):
        again = FakeKafka([])
        again.fake.next_offset = 2  # the group's committed offset
        async with subscriber(FileKeyStore(world.tmp / "hub"), again, world.tmp) as sub:
            assert opened(await sub.poll(0)) == expected


async def test_a_parked_record_whose_signer_the_import_shows_expired_stays_parked_held(
    world: World,
) -> None:
    """Parked for an unknown signer; the import then shows that signer as a broker key since
    expired (it signed the record while live): held as the same record read from the topic
    is, so it stays parked, rather than reported unknown-signer and forgotten; gone past
    only with skip_key_problems."""
    record = sealed(world.new, eid(2), 0)
    kafka = FakeKafka([record])
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        assert opened(await sub.poll(0)) == []
        assert sub.parked == 1
    world.new.rotate("worker", kem=KemSuite.X25519, grace=timedelta(0))  # its key expired
    world.import_directory()
    async with subscriber(world.hub, kafka, world.tmp) as sub:
        with capture_logs() as logs:
            assert opened(await sub.poll(0)) == []
        assert sub.parked == 1
    assert sub.unopenable == []
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["parked_record_held"]
    fresh = FakeKafka([record])  # the same record, read from the topic by another group
    (world.tmp / "other").mkdir()
    async with subscriber(world.hub, fresh, world.tmp / "other") as other:
        with pytest.raises(RecordKeyUnavailable, match="expired"):
            await other.poll(0)
    async with subscriber(world.hub, kafka, world.tmp, skip_key_problems=True) as sub:
        assert opened(await sub.poll(0)) == []
        assert sub.parked == 0
    assert [(u.offset, u.reason) for u in sub.unopenable] == [(0, "unknown-signer")]


def _memory(path: Path, at: list[datetime]) -> SqliteReplayMemory:
    return SqliteReplayMemory(path, group=GROUP, clock=lambda: at[0], parked_limit=2)


def test_past_the_count_or_the_age_the_oldest_parked_record_is_dropped_naming_only_its_place(
    tmp_path: Path,
) -> None:
    at = [datetime(2026, 11, 1, tzinfo=UTC)]
    memory = _memory(tmp_path / "replay.sqlite3", at)
    secret = b"sealed-bytes-never-logged"
    with capture_logs() as logs:
        for offset in range(3):
            memory.park(Msg(offset, secret, [("accord-dek", secret)]))
            at[0] += timedelta(hours=1)
        assert [m.offset for m in memory.parked()] == [1, 2]
        at[0] += timedelta(days=30)
        memory.park(Msg(9, secret, []))
        assert [m.offset for m in memory.parked()] == [9]
    drops = [e for e in logs if e["event"] == "parked_record_dropped"]
    assert [(e["log_level"], e["offset"]) for e in drops] == [
        ("error", 0),
        ("error", 1),
        ("error", 2),
    ]
    assert all(
        set(e) == {"event", "log_level", "topic", "partition", "offset", "why"} for e in drops
    )
    assert drops[0]["topic"] == TOPIC
    assert secret.decode() not in repr(logs)
    memory.close()
    assert [m.headers for m in _memory(tmp_path / "replay.sqlite3", at).parked()] == [()]
