"""Each sender's budget: one noisy or hostile agency cannot crowd out the others.

Every agency publishes on its own ingress topic, so a sender over its budget is slowed by
pausing its topic, not by dropping anything: its records wait on Kafka, in order, and are
processed when the budget allows. Nothing is lost and nothing extra is audited; the other
senders' topics keep flowing, and the audit log grows no faster than the budget lets one
sender make it grow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from broker.topics import party_of_ingress

if TYPE_CHECKING:
    from broker.kafka import Consumer, TopicPartition
    from broker.pipeline._metrics import Metrics

log = structlog.get_logger("accord.worker")


@dataclass
class _Bucket:
    tokens: float
    at: float


class SenderBudget:
    """A token bucket per sender: ``rate`` records a second sustained, ``burst`` at once.

    ``rate`` 0 means no limit (a benchmark measuring the worker's own ceiling).
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("a sender budget needs rate >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def spend(self, sender: str, records: int, now: float) -> float:
        """Charge ``records`` to ``sender``; the seconds it must now wait (0: none)."""
        if self.rate == 0:
            return 0.0
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate) - records
        bucket.at = now
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate


class Throttle:
    """The loop's side of the budget: pauses a sender's ingress topic while it is over, and
    resumes it when its wait is over."""

    def __init__(self, budget: SenderBudget | None) -> None:
        self.budget = budget
        self.paused: dict[str, float] = {}  # ingress topic -> when its sender may go on

    def charge(self, consumer: Consumer, topic: str, records: int, metrics: Metrics) -> None:
        """Count a sender's records against its budget; over it, pause its ingress topic."""
        sender = party_of_ingress(topic)
        if self.budget is None or sender is None:
            return  # consent and access share topics: no one sender to slow
        wait = self.budget.spend(sender, records, time.monotonic())
        if wait <= 0 or topic in self.paused:
            return
        consumer.pause(*(tp for tp in consumer.assignment() if tp.topic == topic))
        self.paused[topic] = time.monotonic() + wait
        metrics.count(metrics.throttled, sender)
        log.warning("sender_throttled", sender=sender, seconds=round(wait, 2))

    def resume_due(self, consumer: Consumer, held: Iterable[TopicPartition]) -> None:
        """Resume the topics whose wait is over, on the partitions of ``held`` (our tasks)."""
        now = time.monotonic()
        due = [t for t, until in self.paused.items() if until <= now]
        for topic in due:
            del self.paused[topic]
        if due:
            resume_held(consumer, (tp for tp in held if tp.topic in due))


def resume_held(consumer: Consumer, tps: Iterable[TopicPartition]) -> None:
    """Resume those of ``tps`` the consumer still holds.

    When a pattern subscription takes up a new topic (a new agency), aiokafka replaces the
    subscription at once and drops its assignment, and only later runs the rebalance whose
    revocation ends our tasks. In between, pausing, resuming or seeking a partition we still
    have a task for raises (an assertion, or IllegalStateError), which would stop the worker.
    The revocation that follows gives those partitions up anyway.
    """
    assigned = consumer.assignment()
    consumer.resume(*(tp for tp in tps if tp in assigned))
