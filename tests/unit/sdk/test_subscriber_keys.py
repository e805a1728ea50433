"""A subscriber and its own keys: a delivery sealed to a rotated-out key still opens; one its
keystore cannot open is held, never committed past; commits and stops end in bounded time.

A fake Kafka hands over the records a test chooses; the keystore's clock is moved so that a
rotation's grace ended days ago, while the records were sealed before or after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError
from structlog.testing import capture_logs

from broker._canonical import canonical_json
from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.envelope import KeyPurpose, Opener, Sealer
from broker.errors import KeyRejected, KeyStoreError, RecordKeyUnavailable, TransportError
from broker.kafka import KafkaClients, TopicPartition
from broker.keys import FileKeyStore
from broker.sdk import Delivery, Subscriber
from broker.topics import SCHEMA_SHARED, deliver

TOPIC = deliver("hub-a")
GROUP = "hub-a.cases"
X25519 = EnvelopeSettings(kem=KemSuite.X25519)
DAY = 24 * 3600.0
NOW = time.time()


@dataclass
class Msg:
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int = 0
    topic: str = TOPIC
    key: bytes | None = None
    timestamp: int = 0


@dataclass
class FakeConsumer:
    """One partition: hands over everything from its position; ``seek`` moves it back;
    ``commit`` commits the position unless ``commit_fault`` says otherwise."""

    records: list[Msg]
    position: int = 0
    committed: list[int] = field(default_factory=list)
    commit_fault: Callable[[], Any] | None = None
    stop_hangs: bool = False

    async def start(self) -> None: ...

    async def stop(self) -> None:
        if self.stop_hangs:
            await asyncio.Event().wait()

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Msg]]:  # noqa: ARG002  # the seam's signature
        batch = [m for m in self.records if m.offset >= self.position]
        if not batch:
            return {}
        self.position = batch[-1].offset + 1
        return {TopicPartition(TOPIC, 0): batch}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp == TopicPartition(TOPIC, 0)
        self.position = offset

    async def commit(self) -> None:
        if self.commit_fault is not None:
            await self.commit_fault()
        self.committed.append(self.position)


class FakeProducer:
    stopped = False

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True


class FakeKafka(KafkaClients):
    def __init__(self, records: list[Msg]) -> None:
        super().__init__(KafkaSettings(bootstrap="127.0.0.1:1"))
        self.fake = FakeConsumer(records)
        self.producers: list[FakeProducer] = []

    def consumer(self, *topics: str, **kw: Any) -> Any:  # noqa: ARG002  # the seam's signature
        return self.fake

    def producer(self, client_id: str, **kw: Any) -> Any:  # noqa: ARG002  # the seam's signature
        self.producers.append(FakeProducer())
        return self.producers[-1]


class Clock:
    def __init__(self) -> None:
        self.at = NOW - 10 * DAY

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> FileKeyStore:
    """The hub's keystore (it holds the broker's keys too, as a test's single store may)."""
    store = FileKeyStore(tmp_path / "keys", create=True, clock=clock)
    for party in ("worker", "hub-a"):
        store.ensure_party(party, kem=KemSuite.X25519)
    return store


def sealed(keys: FileKeyStore, event_id: str, offset: int, *, at: float = NOW) -> Msg:
    """A delivery the broker sealed at ``at`` (its DEK's signed ``created_at``)."""
    delivery = Delivery(
        event_id=event_id, recipient="hub-a", outcome="shared", clauses=("c",),
        agreements=("a",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="v", decided_at=datetime.now(UTC), view={"event.need_level": 3},
    )  # fmt: skip
    record = Sealer("worker", keys, X25519, clock=lambda: at).seal(
        canonical_json(delivery.model_dump(mode="json")), event_id=event_id,
        recipient="hub-a", schema=SCHEMA_SHARED, topic=TOPIC,
    )  # fmt: skip
    return Msg(offset, record.value, list(record.headers))


def eid(n: int) -> str:
    return f"0b7c4a1e-5f3d-4c2a-9e8b-{n:012d}"


def rotate(keys: FileKeyStore, clock: Clock, party: str, *, at: float, grace_days: float) -> str:
    """Rotate ``party`` at ``at``; the id of its encryption (or, for the broker, signing) key
    rotated out."""
    purpose = KeyPurpose.SIGN if party == "worker" else KeyPurpose.ENCRYPT
    [old] = [k for k in keys.keys(party) if k.purpose is purpose]
    clock.at = at
    keys.rotate(party, kem=KemSuite.X25519, grace=timedelta(days=grace_days))
    return old.key_id


def subscriber(keys: FileKeyStore, kafka: FakeKafka, tmp_path: Path, **kw: Any) -> Subscriber:
    return Subscriber(
        "hub-a", keys, kafka, GROUP, envelope=X25519,
        replay_memory=tmp_path / "replay.sqlite3", **kw,
    )  # fmt: skip


def opened(records: list[Any]) -> list[str]:
    return [r.message.event_id for r in records]


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


async def test_a_held_record_opens_once_the_keys_are_imported_and_what_preceded_it_comes_again(
    keys: FileKeyStore, tmp_path: Path
) -> None:
    """Signed by a broker key this keystore does not know yet (the broker rotated, the new
    directory not imported): held, naming the import; once imported, the same subscriber
    reads the whole batch again and opens it all."""
    broker = FileKeyStore(tmp_path / "broker", create=True)
    broker.ensure_party("worker", kem=KemSuite.X25519)
    broker.replace_public(keys.keys("hub-a"))  # the broker seals to the hub's key
    before, new_signer = sealed(keys, eid(1), 0), sealed(broker, eid(2), 1)
    kafka = FakeKafka([before, new_signer])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match="import the latest signed key directory"):
            await sub.poll(0, commit=False)
        keys.replace_public([*keys.keys("hub-a"), *broker.keys("worker")])
        assert opened(await sub.poll(0, commit=False)) == [eid(1), eid(2)]
        await sub.commit()
    assert kafka.fake.committed == [2]


async def test_async_for_stops_on_a_held_record_and_reads_it_again_next_time(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    held_one = sealed(keys, eid(2), 1)  # to the key about to be rotated out and revoked
    keys.revoke(rotate(keys, clock, "hub-a", at=NOW, grace_days=7))
    first = sealed(keys, eid(1), 0)  # to the new key

    class OneByOne(FakeConsumer):
        async def getone(self) -> Msg:
            [m] = [m for m in self.records if m.offset == self.position]
            self.position += 1
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
        assert kafka.fake.position == 1  # the held record is next again
    assert got == [eid(1)]
    assert kafka.fake.committed == [1]  # the first, committed when the next was asked for


async def test_an_expired_broker_signing_key_is_refused_even_for_what_it_signed_while_live(
    keys: FileKeyStore, clock: Clock, tmp_path: Path
) -> None:
    """A signature's time is its signer's own claim: an expired signing key stays refused
    (held, since the keystore cannot take it), unlike the party's own expired key."""
    record = sealed(keys, eid(1), 0, at=NOW - 9 * DAY)
    old = rotate(keys, clock, "worker", at=NOW - 8 * DAY, grace_days=1)
    kafka = FakeKafka([record])
    async with subscriber(keys, kafka, tmp_path) as sub:
        with pytest.raises(RecordKeyUnavailable, match=f"key {old}, expired") as held:
            await sub.poll(0)
    assert held.value.key_id == old


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
