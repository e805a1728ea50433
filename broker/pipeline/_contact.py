"""Whether Kafka is answering the worker: what its readiness says while Kafka is away.

With Kafka gone, aiokafka retries for ever: the loop goes round on empty fetches (so the
worker is live, rightly: it resumes by itself when Kafka is back), and the worker keeps its
partitions until it can reach the group again. Nothing else then says it is not doing its
job (a review found ``/readyz`` at 200 after minutes without a broker).

The signal is one aiokafka keeps anyway: when each partition's last fetch was answered
(``last_poll_timestamp``, set by every answer without an error, records or none). An idle
worker fetches every 200 ms or so, a busy one as its batches commit, so an answer older
than the bound means Kafka is not answering. Paused partitions (a sender over its budget,
a partition being opened) are not fetched: their silence says nothing, and a worker with
only paused partitions is not judged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from broker.kafka import TopicPartition
from broker.ops import OK, Check

UNREACHABLE = Check(ok=False, reason="kafka unreachable")


class Fetching(Protocol):
    """What is read of the group's consumer (aiokafka's public API)."""

    def assignment(self) -> set[TopicPartition]: ...
    def paused(self) -> set[TopicPartition]: ...
    def last_poll_timestamp(self, partition: TopicPartition) -> int | None: ...


def last_answer(consumer: Fetching) -> tuple[float | None, bool]:
    """When Kafka last answered a fetch of the consumer's (Unix time; None if never), and
    whether any partition is being fetched now."""
    assigned = consumer.assignment()
    fetched = bool(assigned - consumer.paused())
    stamps = [ms for tp in assigned if (ms := consumer.last_poll_timestamp(tp)) is not None]
    return (max(stamps) / 1000 if stamps else None), fetched


class KafkaContact:
    """Ready while Kafka has answered a fetch within ``silent_after`` seconds."""

    def __init__(self, silent_after: float, *, wall: Callable[[], float] = time.time) -> None:
        self.silent_after = silent_after
        self._wall = wall
        # Partitions fetched and never answered: since when (first seen by a probe).
        self._unanswered_since: float | None = None

    def check(self, consumer: Fetching | None) -> Check:
        if consumer is None:
            return OK  # not started, or stopped: the worker's other checks say which
        at, fetched = last_answer(consumer)
        now = self._wall()
        if not fetched:
            self._unanswered_since = None
            return OK
        if at is None:
            # Fetching, no answer yet: a worker that lost Kafka just after it was given its
            # partitions must not stay ready for ever.
            if self._unanswered_since is None:
                self._unanswered_since = now
            at = self._unanswered_since
        else:
            self._unanswered_since = None
        return UNREACHABLE if now - at > self.silent_after else OK

    @staticmethod
    def last(consumer: Fetching | None) -> float:
        """When Kafka last answered a fetch (Unix time; 0 if never): the metric's value."""
        if consumer is None:
            return 0.0
        at, _ = last_answer(consumer)
        return at or 0.0
