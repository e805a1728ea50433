"""``/livez`` and ``/readyz`` of the desk and of the flag service (``broker.ops``).

The desk is live while its web server and its ingest loop run, and ready once its pages are
served, the ingest loop (the party's delivery consumer) is running and its users file holds
an account: a desk whose consumer has stopped shows ever older records, and a container
platform must say so. A desk with no account yet runs (``add-user`` is run in its container)
but is not ready, until ``add-user`` has made one: no restart. The flag service
is ready once faust has started its agents and tasks (after its tables' recovery), and live
while a beat its own event loop makes every second is recent: answering at all shows the loop
is not blocked, and the beat shows faust's task machinery still runs.

Neither probe fails when Kafka is away: the desk's pages still serve what is stored, and a
restart would not bring Kafka back. That is what :class:`KafkaContact` is for, a gauge of
when Kafka last answered the process as its party, on which an alert fires
(AccordDeskKafkaUnreachable in broker/deploy/assets/alerts.yml). Nor while the desk's
deliveries are held on a record its keystore cannot open: a gauge and an alert of their own
(``broker.desk._ingest_held``). A consumer's poll is not
evidence by itself: aiokafka's ``getmany`` returns nothing, not an error, while no broker
answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

from broker.kafka import Consumer, stop_bounded
from broker.ops import OK, Check, Heartbeat
from broker.webauth import accounts_ready

__all__ = ["BEAT_SECONDS", "CONTACT_SECONDS", "DeskProbes", "FlagsProbes", "KafkaContact"]

log = structlog.get_logger("accord.desk")

#: How often the flag service's loop beats (its ``stale_after_seconds`` is 30 by default).
BEAT_SECONDS = 1.0


def _running(task: asyncio.Task[Any] | None) -> bool:
    return task is not None and not task.done()


class DeskProbes:
    """The desk's probes, from its two tasks (the web server's and the ingest loop's) and its
    users file (``accounts``: ``UserFile.has_accounts``)."""

    def __init__(self, *, server_started: Callable[[], bool], accounts: Callable[[], bool]) -> None:
        self._server_started = server_started
        self._accounts = accounts
        self.http: asyncio.Task[Any] | None = None
        self.ingest: asyncio.Task[Any] | None = None

    def watch(self, http: asyncio.Task[Any], ingest: asyncio.Task[Any]) -> None:
        """The tasks to judge by, once they run."""
        self.http, self.ingest = http, ingest

    def live(self) -> Check:
        # Before the tasks exist the desk is opening its clients: live, or a slow start
        # would be restarted for ever.
        if self.http is None:
            return Check(ok=True, reason="starting")
        if not _running(self.http):
            return Check(ok=False, reason="web server stopped")
        if not _running(self.ingest):
            return Check(ok=False, reason="delivery consumer stopped")
        return OK

    def ready(self) -> Check:
        if not _running(self.http) or not self._server_started():
            return Check(ok=False, reason="web server not started")
        if not _running(self.ingest):
            return Check(ok=False, reason="delivery consumer not running")
        # Held on a record the keystore cannot open is still ready: the pages serve what is
        # stored, and neither a restart nor taking the pages away would open the record
        # (broker.desk._ingest_held says so instead).
        return accounts_ready(self._accounts)


class FlagsProbes:
    """The flag service's probes: ready once faust runs its tasks, live while it beats."""

    def __init__(self, stale_after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._heart = Heartbeat(stale_after, clock=clock)
        self._stopping = False

    @property
    def started(self) -> bool:
        return self._heart.beaten

    def beat(self) -> None:
        self._heart.beat()

    def stopping(self) -> None:
        """The service is shutting down: no longer ready (it has not stalled: still live)."""
        self._stopping = True

    def live(self) -> Check:
        return self._heart.check()

    def ready(self) -> Check:
        if self._stopping:
            return Check(ok=False, reason="stopping")
        if not self._heart.beaten:
            return Check(ok=False, reason="agents not started")
        return self._heart.check()

    async def run(self) -> None:
        """Beat every :data:`BEAT_SECONDS` until cancelled: a faust ``app.task``, which faust
        starts only once its agents are started and its tables recovered."""
        while True:
            self.beat()
            await asyncio.sleep(BEAT_SECONDS)


#: How often Kafka is asked (at most), and how long an answer may take.
CONTACT_SECONDS = 30.0
_ANSWER_WITHIN = 15.0
CONTACT_METRIC = "accord_desk_kafka_contact_timestamp_seconds"


class KafkaContact:
    """``accord_desk_kafka_contact_timestamp_seconds``: when Kafka last answered this process
    (a metadata request, by a consumer of its own with the party's login, no group), as Unix
    time; the start time until the first answer, so that a process which never reaches Kafka
    alerts as one that lost it. No labels: nothing in it names anyone.

    ``new_consumer`` makes the client (``KafkaClients.consumer`` with no topic); a failed
    start makes a new one next time, as aiokafka's cannot be started twice.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        new_consumer: Callable[[], Consumer],
        *,
        every: float = CONTACT_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gauge = Gauge(
            CONTACT_METRIC,
            "When Kafka last answered this desk or flag service as its party (Unix time; "
            "its start time until the first answer)",
            registry=registry,
        )
        self._gauge.set(clock())
        self._new = new_consumer
        self._every = every
        self._clock = clock
        self._monotonic = monotonic
        self._consumer: Consumer | None = None
        self._asked: float | None = None
        #: Unix times for the pages' banner: the last answer (None: none yet) and, while Kafka
        #: does not answer, the first ask it left unanswered (None while it answers).
        self.answered_at: float | None = None
        self.unanswered_since: float | None = None

    async def check(self) -> bool:
        """Ask Kafka, unless asked within ``every`` seconds; whether it answered (a failure
        is logged, by its type only, and leaves the gauge as it was)."""
        now = self._monotonic()
        if self._asked is not None and now - self._asked < self._every:
            return True
        self._asked = now
        try:
            async with asyncio.timeout(_ANSWER_WITHIN):
                if self._consumer is None:
                    consumer = self._new()
                    try:
                        await consumer.start()
                    except BaseException:
                        await stop_bounded(consumer)
                        raise
                    self._consumer = consumer
                await self._consumer.topics()
        except Exception as exc:  # noqa: BLE001  # any failure is no answer: say so, try again
            log.warning("desk_kafka_no_answer", error=type(exc).__name__)
            if self.unanswered_since is None:
                self.unanswered_since = self._clock()
            return False
        self.answered_at = self._clock()
        self.unanswered_since = None
        self._gauge.set(self.answered_at)
        return True

    async def run(self) -> None:
        """Ask every ``every`` seconds until cancelled (the flag service's ``app.task``)."""
        while True:
            await self.check()
            await asyncio.sleep(self._every)

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):  # on the way out: nothing to hide
                await stop_bounded(consumer)
