"""The worker's readiness while Kafka is away: not ready once no fetch has been answered for
``stale_after_seconds``, ready again when one is; live throughout (it resumes by itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from broker.config import KafkaSettings, Settings
from broker.kafka import KafkaClients, TopicPartition
from broker.ops import OK, Check
from broker.pipeline import Worker, WorkerOptions
from broker.pipeline._contact import KafkaContact

REPO = Path(__file__).resolve().parents[3]
INGRESS = TopicPartition("accord.ingress.wmp", 0)
CONSENT = TopicPartition("accord.consent", 0)
UNREACHABLE = Check(ok=False, reason="kafka unreachable")


@dataclass
class FakeConsumer:
    """aiokafka's consumer as readiness reads it: each partition's last answered fetch (ms)."""

    answered: dict[TopicPartition, int | None] = field(default_factory=dict)
    paused_tps: set[TopicPartition] = field(default_factory=set)

    def assignment(self) -> set[TopicPartition]:
        return set(self.answered)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def last_poll_timestamp(self, partition: TopicPartition) -> int | None:
        return self.answered[partition]


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_ready_while_kafka_answers_fetches_and_not_once_it_has_been_silent_too_long() -> None:
    wall = Wall()
    consumer = FakeConsumer({INGRESS: int(wall.now * 1000), CONSENT: None})
    contact = KafkaContact(30.0, wall=wall)
    assert contact.check(consumer) == OK
    wall.now += 30.0
    assert contact.check(consumer) == OK  # within the bound
    wall.now += 1.0
    assert contact.check(consumer) == UNREACHABLE
    consumer.answered[CONSENT] = int(wall.now * 1000)  # Kafka is back: a fetch answered
    assert contact.check(consumer) == OK


def test_paused_partitions_silence_says_nothing() -> None:
    wall = Wall()
    old = int((wall.now - 600) * 1000)
    consumer = FakeConsumer({INGRESS: old}, paused_tps={INGRESS})  # a sender over its budget
    assert KafkaContact(30.0, wall=wall).check(consumer) == OK


def test_fetching_with_no_answer_ever_is_not_ready_after_the_bound() -> None:
    """Kafka lost just after the partitions were given: no fetch of theirs ever answered."""
    wall = Wall()
    consumer = FakeConsumer({INGRESS: None})
    contact = KafkaContact(30.0, wall=wall)
    assert contact.check(consumer) == OK
    wall.now += 31.0
    assert contact.check(consumer) == UNREACHABLE
    consumer.answered[INGRESS] = int(wall.now * 1000)
    assert contact.check(consumer) == OK


def test_no_consumer_is_left_to_the_other_checks() -> None:
    assert KafkaContact(30.0).check(None) == OK
    assert KafkaContact.last(None) == 0.0


@dataclass
class FakeLoop:
    consumer: FakeConsumer
    assigned: int = 2


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    settings = Settings(home=tmp_path, policies=REPO / "policies")
    return Worker(
        settings,
        WorkerOptions(policies=REPO / "policies"),
        kafka=KafkaClients(KafkaSettings(username="worker", password="pw")),
        registry=CollectorRegistry(),
    )


def test_an_idle_worker_with_kafka_away_is_live_but_not_ready(worker: Worker) -> None:
    wall = Wall()
    consumer = FakeConsumer({INGRESS: int(wall.now * 1000), CONSENT: int(wall.now * 1000)})
    worker.loop = FakeLoop(consumer)  # type: ignore[assignment]
    worker.contact = KafkaContact(worker.settings.worker.stale_after_seconds, wall=wall)
    worker.started.set()
    worker.heartbeat.beat()  # the loop goes round on empty fetches while aiokafka retries
    assert worker.ready() == OK
    wall.now += worker.settings.worker.stale_after_seconds + 1
    assert worker.ready() == UNREACHABLE
    assert worker.live() == OK
    consumer.answered[INGRESS] = int(wall.now * 1000)
    assert worker.ready() == OK


def test_the_last_answer_is_a_metric(worker: Worker) -> None:
    registry = worker.metrics.registry
    name = "accord_kafka_last_fetch_answered_timestamp_seconds"
    assert registry.get_sample_value(name) == 0.0  # not started
    worker.loop = FakeLoop(FakeConsumer({INGRESS: 1_800_000_000_500, CONSENT: None}))  # type: ignore[assignment]
    assert registry.get_sample_value(name) == 1_800_000_000.5
