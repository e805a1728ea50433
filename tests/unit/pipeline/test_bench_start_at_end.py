"""``bench_pipeline``'s latency phase starts its subscriber at the end of the team's delivery
topic. It asks for every partition the topic really has (``make bench``'s bench_flags makes the
topic first, with the default count, and asking for a partition that is not there failed as
stale metadata for 40 s), waits, bounded, for each to have a leader, and asks again with fresh
metadata when the ends time out; a phase that fails keeps the phases measured before it."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from benchmarks import bench_pipeline
from broker.kafka import TopicPartition

TOPIC = "accord.deliver.sandwell-coord"


class _Admin:
    def __init__(self, answers: list[list[dict[str, Any]]]) -> None:
        self.answers = answers

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        parts = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [{"error_code": 0, "topic": topics[0], "partitions": parts}]


class _Consumer:
    def __init__(self, kafka: _Kafka) -> None:
        self.kafka = kafka

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.kafka.stopped += 1

    def assign(self, parts: list[TopicPartition]) -> None:
        self.kafka.assigned.append(parts)

    async def end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        if self.kafka.timeouts:
            self.kafka.timeouts -= 1
            raise KafkaTimeoutError("Failed to get offsets by times in 40000 ms")
        return {tp: 10 + tp.partition for tp in parts}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.kafka.committed = offsets


class _Kafka:
    def __init__(self, answers: list[list[dict[str, Any]]], timeouts: int = 0) -> None:
        self._admin = _Admin(answers)
        self.timeouts = timeouts
        self.assigned: list[list[TopicPartition]] = []
        self.committed: dict[TopicPartition, int] = {}
        self.stopped = 0

    def admin(self, *_: Any) -> _Admin:
        return self._admin

    def consumer(self, *_: str, **__: Any) -> _Consumer:
        return _Consumer(self)


def _parts(n: int, leader: int = 1) -> list[dict[str, Any]]:
    return [{"partition": p, "leader": leader} for p in range(n)]


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_pipeline, "_LEADER_CHECK_S", 0.0)


async def test_the_topics_own_partitions_are_committed_not_the_runs_count() -> None:
    kafka = _Kafka([_parts(3)])  # made earlier with 3, though this run provisions 4
    await bench_pipeline._start_at_end(kafka, TOPIC, "g")  # type: ignore[arg-type]
    assert bench_pipeline.PARTITIONS == 4
    assert kafka.committed == {TopicPartition(TOPIC, p): 10 + p for p in range(3)}


async def test_it_waits_for_every_partition_to_have_a_leader() -> None:
    kafka = _Kafka([[], _parts(3, leader=-1), _parts(3)])
    await bench_pipeline._start_at_end(kafka, TOPIC, "g")  # type: ignore[arg-type]
    assert kafka.assigned == [[TopicPartition(TOPIC, p) for p in range(3)]]
    with pytest.raises(RuntimeError, match="no leader for every partition"):
        await bench_pipeline._start_at_end(_Kafka([_parts(3, leader=-1)]), TOPIC, "g")  # type: ignore[arg-type]


async def test_a_timeout_is_asked_again_with_a_new_consumer_a_bounded_number_of_times() -> None:
    kafka = _Kafka([_parts(4)], timeouts=2)
    await bench_pipeline._start_at_end(kafka, TOPIC, "g")  # type: ignore[arg-type]
    assert len(kafka.assigned) == 3
    assert kafka.stopped == 3  # each attempt's consumer stopped
    assert len(kafka.committed) == 4
    stuck = _Kafka([_parts(4)], timeouts=99)
    with pytest.raises(KafkaTimeoutError):
        await bench_pipeline._start_at_end(stuck, TOPIC, "g")  # type: ignore[arg-type]
    assert stuck.timeouts == 99 - bench_pipeline._END_ATTEMPTS
    assert stuck.stopped == bench_pipeline._END_ATTEMPTS


async def test_a_failed_phase_keeps_what_the_earlier_phases_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def phases(*args: Any) -> None:
        out, phase = args[-2], args[-1]
        out["pipeline_events_per_s"] = 900
        phase[0] = "latency"
        raise KafkaTimeoutError("Failed to get offsets by times in 40000 ms")

    monkeypatch.setattr(bench_pipeline, "_phases", phases)
    result = await bench_pipeline._measure(None, None, 5000, 500.0, 20.0)  # type: ignore[arg-type]
    assert result == {
        "events": 5000,
        "pipeline_events_per_s": 900,
        "failed_phase": {
            "phase": "latency",
            "type": "KafkaTimeoutError",
            "message": "Failed to get offsets by times in 40000 ms",
        },
    }
