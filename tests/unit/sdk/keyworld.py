"""A hub's key world for the subscriber's key tests: a fake Kafka handing over the records a
test chooses, a keystore whose clock a test moves, and deliveries the broker seals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker._canonical import canonical_json
from broker.config import EnvelopeSettings, KafkaSettings, KemSuite
from broker.envelope import KeyPurpose, Sealer
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
    next_offset: int = 0  # the position: the next offset to hand over
    committed: list[int] = field(default_factory=list)
    commit_fault: Callable[[], Any] | None = None
    stop_hangs: bool = False
    assigned: set[TopicPartition] = field(default_factory=lambda: {TopicPartition(TOPIC, 0)})

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def position(self, tp: TopicPartition) -> int:
        assert tp == TopicPartition(TOPIC, 0)
        return self.next_offset

    async def start(self) -> None: ...

    async def stop(self) -> None:
        if self.stop_hangs:
            await asyncio.Event().wait()

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Msg]]:
        batch = [m for m in self.records if m.offset >= self.next_offset][:max_records]
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)  # as Kafka waits for something to come
            return {}
        self.next_offset = batch[-1].offset + 1
        return {TopicPartition(TOPIC, 0): batch}

    async def getone(self) -> Msg:
        while not (batch := await self.getmany(timeout_ms=50, max_records=1)):
            pass
        [msg] = batch[TopicPartition(TOPIC, 0)]
        return msg

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp == TopicPartition(TOPIC, 0)
        self.next_offset = offset

    async def commit(self) -> None:
        if self.commit_fault is not None:
            await self.commit_fault()
        self.committed.append(self.next_offset)


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


def hub_keys(tmp_path: Path, clock: Clock) -> FileKeyStore:
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
