"""The Kafka edge: the worker's place in its consumer group, and a transactional
consume → process → produce loop per input partition it holds.

Workers share the input partitions (every ingress topic, ``accord.consent``,
``accord.access``) through one consumer group. Each partition is a task (``_tasks``) with
its own transactional producer and audit chain: a batch's outputs, audit records, state
changes and consumed offset commit in ONE Kafka transaction, so a crash at any point leaves
either all of a batch's effects or none. When the group hands a partition over, the new
owner's producer fences the old one and the new owner starts the task from the changelog as
committed (``_tail``), so each input is processed exactly once across rebalances, crashes and
SIGKILLs. Failure handling is crash-only: a commit that fails ends the worker, and what its
partitions' later records changed in memory dies with it.

Consent before events: a contact event is decided only once this worker's consent table
holds every consent record ``accord.consent`` held when the event was appended, up to end
offsets read after that (``_fence``: read after the batch's fetch or, for a backlog, an
answer already in hand): the ones on partitions this worker owns are processed first, and
those other workers own are waited for in the changelog (``_consent_wait``). So a consent
recorded (and published) before an event governs it, whichever worker takes either.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from broker.errors import TransportError
from broker.kafka import (
    Consumer,
    KafkaClients,
    Producer,
    TopicPartition,
    connecting,
)
from broker.ops import Heartbeat
from broker.pipeline._commits import Commits
from broker.pipeline._consent_wait import ConsentWait
from broker.pipeline._fence import ConsentFence, end_offsets
from broker.pipeline._group import GroupMembership, Handover, Openings, OpenTask, Reload, cancel_all
from broker.pipeline._lag import Lag, uncommitted
from broker.pipeline._read_past import read_past
from broker.pipeline._report import GroupReport
from broker.pipeline._reseal import Reseals
from broker.pipeline._state import TaskId
from broker.pipeline._tasks import (
    STOP_WITHIN_S,
    Task,
    close_within,
    settle_all,
    start_all,
    stop_all,
    task_producer,
)
from broker.pipeline._throttle import SenderBudget, Throttle, resume_held
from broker.pipeline._view import LEGACY_SHARES_TASK
from broker.provision import WORKER_GROUP
from broker.topics import ACCESS, CONSENT, INGRESS_PREFIX, party_of_ingress

log = structlog.get_logger("accord.worker")

INPUT_PATTERN = rf"^({re.escape(INGRESS_PREFIX)}.+|{re.escape(CONSENT)}|{re.escape(ACCESS)})$"
GROUP = WORKER_GROUP  # the group provisioning grants the worker
ROUND_S = 1.0  # the loop goes round (and beats /livez's heartbeat) at least this often


class TransactionalLoop:
    """Consumes its share of the inputs; one transaction per task per batch."""

    def __init__(
        self,
        kafka: KafkaClients,
        *,
        client_id: str,
        clock: Callable[[], datetime],
        handover: Handover,
        open_task: OpenTask,
        max_batch: int = 500,
        group: str = GROUP,
        pattern: str = INPUT_PATTERN,
        budget: SenderBudget | None = None,
        heartbeat: Heartbeat | None = None,
        membership: GroupMembership | None = None,
        reseals: Reseals | None = None,
    ) -> None:
        self.kafka = kafka
        self.heartbeat = heartbeat
        self.group = group
        self.pattern = pattern
        self.client_id = client_id
        self.clock = clock
        self.handover = handover
        self.open_task = open_task
        self.max_batch = max_batch
        self.pending_policy: Reload | None = None
        self.pending_reseal: bool | None = None  # asked by the key watcher (``_keywatch``)
        self.reseals = reseals or Reseals()
        self._consumer: Consumer | None = None
        self._tasks: dict[TopicPartition, Task] = {}
        self._fatal: BaseException | None = None  # raised by the loop: a listener's failure
        # Next offset to process per owned partition, committed or not: where the consumer
        # is, so the tolerant path can go back to it.
        self._positions: dict[TopicPartition, int] = {}
        # Where a partition the changelog had no offset for began (its first record fetched).
        self._began: dict[TopicPartition, int] = {}
        self._report = GroupReport()
        self._commits = Commits(self._tasks, self._report)
        self._lag = Lag(self._tasks, self._require_consumer, uncommitted=self._uncommitted)
        self._throttle = Throttle(budget)
        # End offsets asked of the group's consumer: it already follows the topics' metadata.
        self._fence = ConsentFence(lambda tps: end_offsets(self._require_consumer(), tps))
        self._consent = ConsentWait(
            fence=self._fence, tasks=self._tasks, positions=self._positions, fetch=self._fetch,
            run=self._run, go_on=self._go_on,
        )  # fmt: skip
        self.membership = membership or GroupMembership()
        self._opening = Openings(self._take_on)

    async def start(self) -> None:
        """Join the group; tasks start as partitions are assigned."""
        self._consumer = self.kafka.consumer(
            client_id=self.client_id,
            group=self.group,
            metadata_max_age_ms=5000,  # pick up new agencies' ingress topics quickly
            max_poll_records=self.max_batch,
            # Latency over fetch efficiency: a contact event should not sit in a broker-side
            # long poll waiting for company.
            fetch_max_wait_ms=20,
            **self.membership.consumer_options(),
        )
        async with connecting(self.kafka):
            await self._consumer.start()
        self.kafka.subscribe(self._consumer, self.pattern, self)

    async def stop(self) -> None:
        """Close the openings under way, the tasks' producers and the consumer together: each
        is bounded (``_tasks.stop_within``), and one after another they added up."""
        tasks = list(self._tasks.values())
        self._tasks.clear()  # a revocation the consumer's stop runs finds none to stop again
        # First, so that its first step runs before the consumer's stop begins: an assignment
        # that stop lets finish (aiokafka waits for a join under way) must take nothing on,
        # or its producers would outlive the worker.
        closes = [self._opening.close(), *(task.stop() for task in tasks)]
        if self._consumer is not None:
            closes.append(close_within(self._consumer))
        await asyncio.gather(*closes)
        self._consumer = None

    # -- the group's moves ----------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Give tasks up: their commits in flight finish; what is pending is dropped (the next
        owner processes it again from what committed). Tasks still being opened are not
        opened: what their opening started is stopped."""
        gone = {TopicPartition(tp.topic, tp.partition) for tp in revoked}
        await self._report.forget(gone)
        await self._opening.abandon(gone, held=self._tasks)
        for tp in revoked:
            task = self._tasks.pop(TopicPartition(tp.topic, tp.partition), None)
            if task is None:
                continue
            task.closed = True
            try:
                await task.settle()
            except BaseException as exc:  # noqa: BLE001  # the loop raises it, not aiokafka
                self._fatal = self._fatal or exc
            await task.stop()
            self._positions.pop(task.tp, None)
            self._began.pop(task.tp, None)
            if task.id == LEGACY_SHARES_TASK:
                self.reseals.forget()
        self._lag.forget()
        if revoked:
            log.info("partitions_revoked", partitions=len(revoked), held=len(self._tasks))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Take partitions on: paused at once, their tasks opened in the background.

        aiokafka sends the group no heartbeat until this returns, and the broker drops a
        member it has not heard from for the session timeout. Opening tasks (a producer per
        partition that fences the earlier owner, then the state caught up) takes seconds for
        dozens of partitions on a busy event loop; done here, it once outlasted the session,
        and every rejoin revoked and reassigned everything, for ever. So this only pauses the
        partitions and returns; :meth:`_take_on` opens them.
        """
        new = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        new = [tp for tp in new if tp not in self._tasks and tp not in self._opening.partitions()]
        if self._opening.closed or not new:
            return
        # Nothing of theirs is handed out until their tasks stand and have sought to where
        # they resume: a fetch under way meanwhile reads from the group's older offset, and
        # records handed out with no task to take them would be skipped for good.
        self._require_consumer().pause(*new)
        self._opening.begin(new)

    async def _take_on(self, new: list[TopicPartition]) -> None:
        """Open ``new``'s tasks: each partition's producer started (which fences its earlier
        owner), then the state caught up to what committed before, then each task opened
        from it and its partition resumed. A partition is processed by no task until then.

        A failure ends the worker (the loop raises it); a cancellation (a revocation, a stop)
        opens nothing more. Either way every producer started for a task not opened is
        stopped.
        """
        began = time.monotonic()
        producers = {tp: self._producer(TaskId(tp.topic, tp.partition)) for tp in new}
        try:
            # Dozens of producers (every partition, after a rebalance) take seconds to start
            # while Kafka answers each: only a pause with no start ending is Kafka's silence.
            async with connecting(self.kafka) as answered:
                await start_all(producers.values(), started=answered)
            # Fenced: nothing more can commit for these partitions but through us.
            await self.handover.caught_up()
            for tp in new:
                self._open(tp, producers.pop(tp))
                if tp.topic not in self._throttle.paused:
                    resume_held(self._require_consumer(), [tp])
        except asyncio.CancelledError:
            await stop_all(producers.values())
            raise
        except BaseException as exc:  # noqa: BLE001  # the loop raises it
            self._fatal = self._fatal or exc
            await stop_all(producers.values())
            return
        names = sorted(f"{tp.topic}-{tp.partition}" for tp in new)
        log.info(
            "partitions_assigned",
            partitions=names,
            held=len(self._tasks),
            took_s=round(time.monotonic() - began, 2),
        )

    async def opened(self) -> None:
        """Wait until the partitions being taken on have their tasks (or their opening ended)."""
        await self._opening.settled()

    def _producer(self, task: TaskId) -> Producer:
        return task_producer(self.kafka, task, self.client_id)

    def _open(self, tp: TopicPartition, producer: Producer) -> None:
        consumer = self._require_consumer()
        tid = TaskId(tp.topic, tp.partition)
        view = self.handover.view
        state = view.task_state(tid)
        processor, first = self.open_task(tid, state)
        partitions = len(consumer.partitions_for_topic(tp.topic) or ())
        task = Task(tid, producer, processor, partitions, opened_after=self._fence.fetches)
        task.pending.outs += first
        if tid == LEGACY_SHARES_TASK and view.legacy_shares:
            task.pending.outs += processor.adopt(view.legacy_shares)
        if tid == LEGACY_SHARES_TASK:
            # Consent sealed to an older worker key, sealed again by this one task (``_reseal``).
            self.reseals.add_to(task, announce=True)
        self._tasks[tp] = task
        if (offset := state.offsets.get(tid)) is not None:
            if tp in consumer.assignment():  # else dropped mid-callback: see resume_held
                consumer.seek(tp, offset)
            self._positions[tp] = offset
            task.position = offset
        self._report.taken_on(tp, offset)
        # A partition the changelog has never seen (a new agency's topic) starts where the
        # consumer's reset policy puts it: its beginning.

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Process records as they arrive; commit each task's batch, one transaction at a time.

        While a task's transaction commits, the loop goes on fetching and processing into its
        next one, which starts the moment the first ends: a record waits for at most the
        commit in flight, never for a fetch to be asked for. That overlap is safe because
        failure is crash-only: if a commit fails the loop raises, and what later records
        changed in memory dies with the process; a restarted worker resumes from the
        committed changelog.
        """
        consumer = self._require_consumer()
        fetching: asyncio.Task[dict[TopicPartition, list[Any]]] | None = None
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                if self.heartbeat is not None:  # round at least every ROUND_S, even mid-join
                    self.heartbeat.beat()
                self._raise_fatal()
                self._take_policy()
                self._take_reseal()
                self._commits.start_due()
                self._lag.tick()
                if stop.is_set():
                    break
                self._throttle.resume_due(consumer, self._tasks)
                waits: set[asyncio.Future[Any]] = {stopping}
                waits |= {t.in_flight for t in self._tasks.values() if t.in_flight is not None}
                # Back-pressure: while slow commits run, process at most one batch ahead.
                if sum(len(t.pending.stamps) for t in self._tasks.values()) < self.max_batch:
                    if fetching is None:
                        fetching = asyncio.create_task(self._fetch(consumer))
                    waits.add(fetching)
                # Bounded: during a group join aiokafka's fetch does not return for seconds,
                # and a loop that went round only when it did looked stalled to /livez. The
                # fetch under way is kept, never doubled; a wedged event loop still stalls.
                done, _ = await asyncio.wait(
                    waits, timeout=ROUND_S, return_when=asyncio.FIRST_COMPLETED
                )
                self._commits.reap()
                self._report.progress(consumer)
                if fetching is not None and fetching in done:
                    fetched = fetching
                    fetching = None
                    if batch := fetched.result():
                        await self._process(consumer, batch, stop)
            await cancel_all(fetching)
            fetching = None
            await self._commits.finish()
            self._raise_fatal()  # a revocation's, during the last commits: not an exit 0
            await self._report.now(consumer)
        finally:
            await cancel_all(fetching, stopping, self._report.running, self._lag.running)
            await self._fence.close()
            await settle_all(list(self._tasks.values()), within=STOP_WITHIN_S)

    def _raise_fatal(self) -> None:
        self.handover.check()
        if self._fatal is not None:
            raise self._fatal

    def _take_policy(self) -> None:
        """A requested policy load joins what each task has pending: its audit records
        follow it in order, on every chain."""
        if self.pending_policy is not None:
            load, self.pending_policy = self.pending_policy, None
            for task in self._tasks.values():
                task.pending.outs += load(task.processor)

    def _take_reseal(self) -> None:
        """A re-seal the key watcher asked for, by the task of consent partition 0 if this
        worker holds it (else its holder's worker does it): between batches, never while
        one is being processed, and committed like any batch."""
        if (announce := self.pending_reseal) is None:
            return
        self.pending_reseal = None
        task = self._tasks.get(
            TopicPartition(LEGACY_SHARES_TASK.topic, LEGACY_SHARES_TASK.partition)
        )
        if task is not None and not task.closed:
            self.reseals.add_to(task, announce=announce)

    async def _process(
        self, consumer: Consumer, batch: dict[TopicPartition, list[Any]], stop: asyncio.Event
    ) -> None:
        """Consent and acknowledgements first, then contact events once consent is current."""
        fetch = self._fence.fetches  # the fetch that returned this batch: none since
        events = {tp: m for tp, m in batch.items() if party_of_ingress(tp.topic) is not None}
        for tp, msgs in batch.items():
            if tp not in events:
                await self._run(tp, msgs, fetch)
        if events and await self._consent.current(self.handover, consumer, stop, events, fetch):
            for tp, msgs in events.items():
                await self._run(tp, msgs, fetch)

    async def _run(self, tp: TopicPartition, msgs: list[Any], fetch: int) -> None:
        """Process ``msgs``, which fetch number ``fetch`` returned, on their partition's task."""
        task = self._tasks.get(TopicPartition(tp.topic, tp.partition))
        if task is None or task.opened_after >= fetch:
            # Revoked since the fetch: its next owner reads these again. Or revoked and taken
            # back (a rebalance may run at any await here): the new task starts at the
            # committed offset, and work the old one had pending before these was dropped.
            return
        metrics = task.processor.outbox.metrics
        for m in msgs:
            if task.closed:
                return
            if task.position is not None and m.offset < task.position:
                # Fetched from the group's older offset before the listener's seek to the
                # committed one took hold: processed and committed already.
                continue
            task.position = m.offset + 1
            metrics.wait.observe(max(0.0, time.time() - m.timestamp / 1000))
            task.pending.outs += task.processor.handle(
                m.topic, m.partition, m.offset, m.value, m.headers,
                at=self.clock(), key=m.key, partitions=task.partitions,
            )  # fmt: skip
            task.pending.stamps.append(m.timestamp)
            task.pending.next_offset = m.offset + 1
            await asyncio.sleep(0)  # let the transactions in flight make progress
        self._throttle.charge(self._require_consumer(), tp.topic, len(msgs), metrics)

    def _go_on(self) -> None:
        """While a batch waits for consent: /livez's heartbeat beaten, commits that ended
        reaped (a failure raises), a listener's failure raised, the commits due started and
        the lag gauge refreshed, as each round of the loop does.

        That wait can outlast the heartbeat's staleness by far (another worker's consent
        progress, a SIGKILLed one's for its whole session): a loop that beat only between
        rounds would be restarted by its liveness probe while waiting as it should."""
        if self.heartbeat is not None:
            self.heartbeat.beat()
        self._commits.reap()
        self._raise_fatal()
        self._commits.start_due()
        self._lag.tick()

    async def _fetch(
        self, consumer: Consumer, *partitions: TopicPartition
    ) -> dict[TopicPartition, list[Any]]:
        """The next records, their partitions' positions moved past them before any await.

        A rebalance listener may run at any await; it must find the position after every
        record already fetched, or it would seek back and this worker would see them twice
        (as replays). A fetched batch is always processed before the loop fetches again.
        """
        try:
            batch: dict[TopicPartition, list[Any]] = await consumer.getmany(
                *partitions, timeout_ms=200, max_records=self.max_batch
            )
        except UnicodeDecodeError:
            # The tolerant read, of the partitions asked for (all when none are named): the
            # consent wait's fetch must not read, and so skip, the events that are waiting.
            asked = partitions or tuple(consumer.assignment())
            fetchable = [tp for tp in asked if tp.topic not in self._throttle.paused]
            batch = await read_past(
                self.kafka, consumer, fetchable, self._positions, self.max_batch, tasks=self._tasks
            )
        for tp, msgs in batch.items():
            if tp not in self._positions:
                self._began.setdefault(tp, msgs[0].offset)
            self._positions[tp] = msgs[-1].offset + 1
        self._fence.fetches += 1  # before any request the batch's consent check sends
        return batch

    def _uncommitted(self, tp: TopicPartition) -> int | None:
        committed = self._report.durable.get(tp, self._began.get(tp))
        return uncommitted(self._consumer, tp, self._positions.get(tp), committed)

    @property
    def consumer(self) -> Consumer | None:
        """The group's consumer while started: readiness asks it when Kafka last answered."""
        return self._consumer

    @property
    def assigned(self) -> int:
        """How many input partitions this worker holds now (0 before start or mid-rebalance)."""
        return len(self._tasks)

    def _require_consumer(self) -> Consumer:
        if self._consumer is None:
            raise TransportError("the worker's consumer is not started")
        return self._consumer
