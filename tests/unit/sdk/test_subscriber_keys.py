"""A subscriber and its own keys: a delivery sealed to a rotated-out key still opens; one its
keystore cannot open is held, never committed past; commits and stops end in bounded time.

A fake Kafka hands over the records a test chooses; the keystore's clock is moved so that a
rotation's grace ended days ago, while the records were sealed before or after it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from structlog.testing import capture_logs

from broker.envelope import Opener
from broker.errors import KeyRejected, KeyStoreError, RecordKeyUnavailable, TransportError
from broker.keys import FileKeyStore
from broker.sdk import Subscriber
from tests.unit.sdk.keyworld import (
    DAY,
    NOW,
    TOPIC,
    Clock,
    FakeConsumer,
    FakeKafka,
    Msg,
    eid,
    hub_keys,
    opened,
    rotate,
    sealed,
    subscriber,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> FileKeyStore:
    return hub_keys(tmp_path, clock)


# -- opening with the party's own expired key ------------------------------------------------


async def test_a_delivery_sealed_to_an_own_key_while_live_opens_after_the_grace_ended(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Away over half-term: sealed nine days ago, the key rotated out eight days ago with a
    day's grace. It still opens, and is committed once handled."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    rotate(keys, clock, "hub-a", at=NOW - 8 * DAY, grace_days=1)
    with pytest.raises(KeyRejected):  # expired indeed: the envelope's plain rule refuses it
        Opener("hub-a", keys).open_kafka(record.value or b"", record.headers)
    kafka = FakeKafka([record])
    async with subscriber(keys, kafka, tmp_path) as sub:
        assert opened(await sub.poll(0, commit=False)) == [eid(1)]
        await sub.commit()
    assert sub.unopenable == []
    assert kafka.fake.committed == [1]


async def test_a_delivery_sealed_to_an_own_key_after_it_expired_is_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    record = sealed(keys, eid(1), 0, at=NOW - 6 * DAY)  # the broker's view was behind
    old = rotate(keys, clock, "hub-a", at=NOW - 8 * DAY, grace_days=1)
    kafka = FakeKafka([record])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match="after that key expired") as held:
            await sub.poll(0)
    assert (held.value.partition, held.value.offset, held.value.key_id) == (0, 0, old)
    assert kafka.fake.committed == []


# -- records the keystore cannot open: held, not committed past --------------------------------


async def test_a_delivery_sealed_to_a_revoked_own_key_is_held_not_committed_past(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Revoked means compromised: never opened; but never skipped unsaid either. The record
    and the one after it come again, however often the subscriber is asked."""
    revoked_one = sealed(keys, eid(2), 1)
    old = rotate(keys, clock, "hub-a", at=NOW, grace_days=7)
    keys.revoke(old)
    first, after = sealed(keys, eid(1), 0), sealed(keys, eid(3), 2)  # to the new key
    kafka = FakeKafka([first, revoked_one, after])
    async with subscriber(keys, kafka, tmp_path) as sub:
        for _ in range(2):
            with pytest.raises(RecordKeyUnavailable) as held:
                await sub.poll(0, commit=False)
            await sub.commit()  # nothing of the batch was handed over: nothing to commit
    assert isinstance(held.value, KeyStoreError)
    message = str(held.value)
    assert f"{TOPIC} partition 0 offset 1" in message
    assert f"key {old}, revoked" in message
    assert "docs/sdk.md" in message
    assert kafka.fake.committed == []
    assert sub.unopenable == []


async def test_a_held_record_opens_once_the_keystore_is_restored_and_what_preceded_it_comes_again(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """A keystore restored from a backup older than a rotation: the record sealed to the new
    key is held, naming the restore; nothing of the batch is committed, and once the keystore
    holds the key the next start reads the whole batch again and opens it all."""
    backup = tmp_path / "backup"
    shutil.copytree(keys.path, backup)
    rotate(keys, clock, "hub-a", at=NOW, grace_days=7)
    before, after = sealed(keys, eid(1), 0), sealed(keys, eid(2), 1)  # to the new key
    kafka = FakeKafka([before, after])
    old_store = FileKeyStore(backup, clock=clock)
    async with subscriber(old_store, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match="restore the keystore") as held:
            await sub.poll(0, commit=False)
    assert held.value.key_id == keys.current_encryption_key("hub-a").key_id
    assert kafka.fake.committed == []
    shutil.rmtree(backup)
    shutil.copytree(keys.path, backup)
    async with subscriber(FileKeyStore(backup, clock=clock), kafka, tmp_path) as sub:
        assert opened(await sub.poll(0, commit=False)) == [eid(1), eid(2)]
        await sub.commit()
    assert kafka.fake.committed == [2]
    assert sub.unopenable == []


async def test_a_delivery_sealed_to_an_own_key_retired_on_purpose_is_refused_and_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Sealed while the key was live, as the one that opens after expiry, but the key was
    retired ('records under it no longer open'): the opener refuses it even allowing expired
    own keys, and the subscriber holds on it (the broker signed it: the reader's own key's
    doing, not the record's)."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    old = rotate(keys, clock, "hub-a", at=NOW - 8 * DAY, grace_days=1)
    keys.retire(old)
    with pytest.raises(KeyRejected):
        Opener("hub-a", keys, expired_own_keys=True).open_kafka(record.value or b"", record.headers)
    kafka = FakeKafka([record, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match=f"key {old}, retired") as held:
            await sub.poll(0)
    assert (held.value.offset, held.value.key_id) == (0, old)
    assert kafka.fake.committed == []
    assert sub.unopenable == []


async def test_async_for_stops_on_a_held_record_and_reads_it_again_next_time(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    held_one = sealed(keys, eid(2), 1)  # to the key about to be rotated out and revoked
    keys.revoke(rotate(keys, clock, "hub-a", at=NOW, grace_days=7))
    first = sealed(keys, eid(1), 0)  # to the new key

    class OneByOne(FakeConsumer):
        async def getone(self) -> Msg:
            [m] = [m for m in self.records if m.offset == self.next_offset]
            self.next_offset += 1
            return m

    kafka = FakeKafka([])
    kafka.fake = OneByOne([first, held_one])
    got: list[str] = []

    async def read(sub: Subscriber) -> None:
        async for record in sub:
            got.append(record.message.event_id)  # type: ignore[union-attr]

    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match="revoked"):
            await read(sub)
        assert kafka.fake.next_offset == 1  # the held record is next again
    assert got == [eid(1)]
    assert kafka.fake.committed == [1]  # the first, committed when the next was asked for


async def test_a_delivery_signed_by_a_broker_key_expired_before_it_was_read_is_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """A signature's time is its signer's own claim, so an expired signing key stays refused,
    unlike the party's own expired key; but what the broker signed with it, read by a reader
    that fell behind, is held rather than lost: its signature verifies under that key."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    old = rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    kafka = FakeKafka([record, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match=f"the broker signed it with its key {old}, "
                           "expired") as held:  # fmt: skip
            await sub.poll(0)
    assert (held.value.offset, held.value.key_id) == (0, old)
    assert "ask the partnership's operators to send it again" in str(held.value)
    assert kafka.fake.committed == []


async def test_a_delivery_signed_by_a_broker_key_retired_before_it_was_read_is_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Retiring is on purpose, not a compromise (``accord keys retire`` asks no --force):
    what the broker signed with the key before it was retired holds as an expired key's
    does, never skipped and lost; one dated after the retirement is anybody's claim."""
    record = sealed(keys, eid(1), 0, at=NOW - 2 * DAY)
    old = rotate(keys, clock, "worker", at=NOW - 1.5 * DAY, grace_days=45)
    clock.at = NOW - DAY
    keys.retire(old)
    clock.at = NOW
    kafka = FakeKafka([record, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match=f"the broker signed it with its key {old}, "
                           "retired") as held:  # fmt: skip
            await sub.poll(0)
    assert (held.value.offset, held.value.key_id) == (0, old)
    assert kafka.fake.committed == []


async def test_a_record_signed_by_a_broker_key_since_revoked_is_skipped_never_held(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Revocation is for a compromised key: whoever stole it signs a new record, dated before
    the revocation, under a fresh event id. Reported as unknown-signer (an error) and gone
    past, at the first start, not held at every one."""
    clock.at = NOW - 3 * DAY
    shutil.copytree(tmp_path / "keys", tmp_path / "stolen")
    stolen = FileKeyStore(tmp_path / "stolen", clock=clock)
    keys.revoke(rotate(keys, clock, "worker", at=NOW - DAY, grace_days=45))
    clock.at = NOW
    forged = sealed(stolen, eid(666), 0, at=NOW - 2 * DAY)  # signed now, dated before
    kafka = FakeKafka([forged, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with capture_logs() as logs:
            assert opened(await sub.poll(0)) == [eid(2)]
    assert [(u.offset, u.reason) for u in sub.unopenable] == [(0, "unknown-signer")]
    assert [(e["event"], e["log_level"]) for e in logs] == [("record_unopenable", "error")]
    assert kafka.fake.committed == [2]


async def test_a_held_record_skipped_on_purpose_opens_when_the_broker_sends_it_again(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Asking the replay memory about a record signed by an expired broker key records no
    sighting: once skipped with skip_key_problems, the same event sent again under the new
    key, at a new offset, opens rather than being refused as a replay."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    clock.at = NOW
    kafka = FakeKafka([record])
    async with subscriber(keys, kafka, tmp_path, skip_key_problems=True) as sub:
        assert opened(await sub.poll(0)) == []
    assert [(u.offset, u.reason) for u in sub.unopenable] == [(0, "unknown-signer")]
    kafka.fake.records.append(sealed(keys, eid(1), 1))  # sent again, signed by the new key
    async with subscriber(keys, kafka, tmp_path) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
    assert sub.unopenable == []


async def test_a_record_an_expired_broker_key_signed_before_the_replay_memory_reaches_is_skipped(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """Signed longer ago than the replay memory remembers (no delivery topic keeps one so
    long): a copy could not be told from the genuine record, so it is skipped, not held."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    clock.at = NOW
    kafka = FakeKafka([record, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path, replay_retention=timedelta(days=5)) as sub:
        assert opened(await sub.poll(0)) == [eid(2)]
    assert [(u.offset, u.reason) for u in sub.unopenable] == [(0, "unknown-signer")]


async def test_skip_key_problems_reports_a_held_record_and_goes_past_it(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    revoked_one = sealed(keys, eid(1), 0)
    keys.revoke(rotate(keys, clock, "hub-a", at=NOW, grace_days=7))
    kafka = FakeKafka([revoked_one, sealed(keys, eid(2), 1)])
    async with subscriber(keys, kafka, tmp_path, skip_key_problems=True) as sub:
        assert opened(await sub.poll(0)) == [eid(2)]
    assert [(u.offset, u.reason) for u in sub.unopenable] == [(0, "key-rejected")]
    assert kafka.fake.committed == [2]


async def test_a_record_at_fault_itself_is_still_reported_and_passed(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    kafka = FakeKafka([Msg(0, b"\x00garbage", []), sealed(keys, eid(1), 1)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        assert opened(await sub.poll(0)) == [eid(1)]
    assert [u.reason for u in sub.unopenable] == ["malformed"]


# -- commit and stop in bounded time ----------------------------------------------------------


async def _never() -> None:
    await asyncio.Event().wait()


async def _refused() -> None:
    raise CommitFailedError("the group rebalanced")


@pytest.mark.parametrize("fault", [_never, _refused], ids=["kafka-silent", "rebalanced"])
async def test_a_commit_kafka_does_not_confirm_keeps_its_marks_for_the_next(
    fault: Callable[[], Any], keys: FileKeyStore, tmp_path: Path
) -> None:
    kafka = FakeKafka([sealed(keys, eid(1), 0)])
    async with subscriber(keys, kafka, tmp_path, send_timeout=0.2) as sub:
        assert opened(await sub.poll(0, commit=False)) == [eid(1)]
        kafka.fake.commit_fault = fault
        started = time.monotonic()
        with pytest.raises(TransportError, match="nothing is counted as committed"):
            await sub.commit()
        assert time.monotonic() - started < 5
        kafka.fake.commit_fault = None
        await sub.commit()  # not a no-op: the batch is still to commit
    assert kafka.fake.committed == [1]


async def test_a_cancelled_commit_keeps_its_marks(keys: FileKeyStore, tmp_path: Path) -> None:
    kafka = FakeKafka([sealed(keys, eid(1), 0)])
    async with subscriber(keys, kafka, tmp_path) as sub:
        await sub.poll(0, commit=False)
        kafka.fake.commit_fault = _never
        task = asyncio.create_task(sub.commit())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        kafka.fake.commit_fault = None
        await sub.commit()
    assert kafka.fake.committed == [1]


async def test_stop_abandons_a_consumer_kafka_does_not_let_go_of_within_its_bound(
    keys: FileKeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a SIGTERM handler calls it: back within send_timeout plus the grace, the
    acknowledgements' producer stopped too and the memory closed."""
    monkeypatch.setattr("broker.sdk._bounded.STOP_GRACE", 0.2)
    kafka = FakeKafka([])
    kafka.fake.stop_hangs = True
    sub = subscriber(keys, kafka, tmp_path, send_timeout=0.3)
    await sub.start()
    started = time.monotonic()
    with capture_logs() as logs:
        await sub.stop()
    assert time.monotonic() - started < 2
    assert [e["event"] for e in logs] == ["kafka_consumer_abandoned_at_stop"]
    assert kafka.producers[-1].stopped
    with pytest.raises(Exception, match="not started"):
        await sub.poll(0)


async def test_stop_keeps_to_one_deadline_when_the_abandoning_hangs_too(
    keys: FileKeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer whose stop shrugs off its cancellation and whose connections never close:
    the stop still returns within send_timeout + STOP_GRACE in all, not a grace per wait."""
    monkeypatch.setattr("broker.sdk._bounded.STOP_GRACE", 0.6)

    class Stuck:
        async def close(self) -> None:
            await asyncio.Event().wait()

    class Stubborn(FakeConsumer):
        _client = Stuck()

        async def stop(self) -> None:
            for _ in range(2):  # the first cancel is ignored, as a shielded close would be
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    continue

    kafka = FakeKafka([])
    kafka.fake = Stubborn([])
    sub = subscriber(keys, kafka, tmp_path, send_timeout=0.3)
    await sub.start()
    started = time.monotonic()
    with capture_logs():
        await sub.stop()
    assert time.monotonic() - started < 0.3 + 0.6 + 0.25
    # The stop that shrugged off its cancel is still running: held, not left to the collector
    # to destroy pending (asyncio would log that wherever the collector ran).
    from broker.kafka import _errors

    left = [t for t in _errors._stopping if not t.done() and "stop_quietly" in repr(t)]
    assert left
