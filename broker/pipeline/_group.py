"""The worker's membership of its consumer group: how it keeps its place, and the partitions
it is taking on.

aiokafka sends the group no heartbeat while the assignment listener runs, and the broker
drops a member it has not heard from for the session timeout; every rejoin then revokes and
reassigns every partition. So the listener only pauses what it is given, and the slow part
(a producer per partition that fences the earlier owner, the state caught up) runs in the
background, as an *opening* this module keeps track of, while the heartbeats go on.

The loop's seams to the rest of the worker live here too: ``Handover`` (the group's
committed view), ``OpenTask`` and ``Reload``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from broker.kafka import TopicPartition
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._state import TaskId, WorkerState
from broker.pipeline._view import StateView


@dataclass(frozen=True)
class GroupMembership:
    """The worker consumer's group timing (``WorkerSettings``: ``group_session_timeout_ms``).

    The session timeout is how long the broker waits to hear from a member before it hands
    the member's partitions to the others: Kafka's own client has defaulted to 45 s since
    3.0, aiokafka still to 10 s, which a busy event loop (the demo's, shared with the console,
    the agencies and the subscribers) can miss. A worker that stops cleanly leaves the group
    at once, so only a killed or cut-off worker's partitions wait for it. The broker accepts
    6 s to 30 minutes (``group.min/max.session.timeout.ms``).
    """

    session_timeout_ms: int = 45_000
    # Kafka's advice: at most a third of the session, so two heartbeats may be lost.
    heartbeat_interval_ms: int = 3_000
    # How long the group waits for its members to rejoin in a rebalance: each first gives
    # up its partitions, letting a commit in flight finish (bounded: _tasks.COMMIT_WITHIN_S).
    rebalance_timeout_ms: int = 60_000
    # A member that asks for no records for this long leaves the group. The loop fetches at
    # least every 200 ms when healthy; five minutes without means it is stuck, and another
    # worker should take its partitions.
    max_poll_interval_ms: int = 300_000

    @classmethod
    def with_session(cls, session_timeout_ms: int) -> GroupMembership:
        return cls(
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=min(3_000, session_timeout_ms // 3),
        )

    def consumer_options(self) -> dict[str, int]:
        return {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            # aiokafka sends JoinGroup with the client's request timeout (default 40 s), and
            # the broker holds a join until every member has rejoined, up to the rebalance
            # timeout: a shorter request timeout gives up on the join of a member waiting for
            # a slow one. So it is the rebalance timeout and 5 s, as Kafka's Java client
            # allows for JoinGroup.
            "request_timeout_ms": self.rebalance_timeout_ms + 5_000,
        }


TakeOn = Callable[[list[TopicPartition]], Coroutine[Any, Any, None]]


class Openings:
    """The partitions being taken on, each set by a background task running ``take_on``."""

    def __init__(self, take_on: TakeOn) -> None:
        self._take_on = take_on
        self._running: dict[asyncio.Task[None], frozenset[TopicPartition]] = {}
        self.closed = False  # a stopping worker takes nothing more on

    def partitions(self) -> set[TopicPartition]:
        return set().union(*self._running.values())

    def begin(self, new: list[TopicPartition]) -> None:
        if self.closed or not new:
            return
        opening = asyncio.create_task(self._take_on(new), name="accord-take-on")
        self._running[opening] = frozenset(new)
        opening.add_done_callback(lambda t: self._running.pop(t, None))

    async def abandon(self, gone: set[TopicPartition], *, held: Container[TopicPartition]) -> None:
        """Cancel the openings of any of ``gone`` and wait until they have stopped what they
        started. Their other partitions (a revocation of only some), unless ``held`` (opened
        before the cancellation), are opened again."""
        hit = {t: tps for t, tps in self._running.items() if tps & gone}
        if not hit:
            return
        for opening in hit:
            opening.cancel()
        await asyncio.gather(*hit, return_exceptions=True)
        for opening in hit:
            self._running.pop(opening, None)
        rest = [tp for tp in set().union(*hit.values()) - gone if tp not in held]
        self.begin(sorted(rest, key=lambda tp: (tp.topic, tp.partition)))

    async def settled(self) -> None:
        """Wait until no opening is under way (each ended: opened, failed or abandoned)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        """Take nothing more on, and abandon every opening under way."""
        self.closed = True
        await self.abandon(self.partitions(), held=())


class Handover(Protocol):
    """What the loop needs of the rest of the group: the committed view, kept current."""

    @property
    def view(self) -> StateView: ...

    async def caught_up(self) -> None: ...
    async def moved(self, within: float) -> None: ...
    def check(self) -> None: ...


#: Starts a task's processor from its committed state; returns it and the task's first
#: records (the bundle in force, on the task's chain).
OpenTask = Callable[[TaskId, WorkerState], tuple[Processor, list[OutRecord]]]
#: What a reload puts on each task's chain.
Reload = Callable[[Processor], list[OutRecord]]


async def cancel_all(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel helper tasks and wait for them, whatever they ended with: cleanup must not
    replace the error that is ending the loop."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)
