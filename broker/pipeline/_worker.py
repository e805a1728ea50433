"""Assembling a worker from settings: policy, keys, state, topics, the loop, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import structlog
from prometheus_client import CollectorRegistry

from broker.audit import GENESIS, ChainWriter
from broker.config import OpsEndpoint, Settings
from broker.errors import BundleInvalid, ConfigError, KeyStoreError, TransportError
from broker.kafka import (
    KafkaClients,
    missing_topics,
    quiet_leftovers,
    warn_if_plaintext,
)
from broker.keys import FileKeyStore, warn_if_unprotected
from broker.ops import Check, Heartbeat, serving_ops
from broker.pipeline._contact import Fetching, KafkaContact
from broker.pipeline._effects import OutRecord
from broker.pipeline._group import GroupMembership, OpenTask
from broker.pipeline._keyset import opened_record
from broker.pipeline._keywatch import follow_keys
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._reseal import Reseals
from broker.pipeline._restore import restore_state
from broker.pipeline._state import TaskId, WorkerState, state_mac_key
from broker.pipeline._tail import ChangelogTail
from broker.pipeline._throttle import SenderBudget
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.provision import desired_access
from broker.topics import DESK_PREFIX, party_of_ingress

log = structlog.get_logger("accord.worker")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerOptions:
    policies: Path
    instance: str = "worker-1"
    checkpoint_every: int = 1000
    # Records become visible to recipients when their batch's transaction commits, so the
    # batch bounds latency: ~1 ms of work per event on the reference machine.
    max_batch: int = 100
    # Each sender's budget (records/s sustained, and at once): far above what an agency
    # sends (thousands a day, an export of a few thousand at once), so it only ever slows a
    # runaway or hostile sender. 0 lifts the limit (benchmarks of the worker's ceiling).
    sender_rate: float = 50.0
    sender_burst: int = 10_000


async def absent_topics(kafka: KafkaClients, policy: Policy) -> list[str]:
    """The topics ``policy`` needs that this worker cannot see: not made yet, or not its own.

    The worker never makes topics: only the admin may create topics (and ACLs say so), with
    ``accord kafka provision``, which a new agency's onboarding runs anyway.
    """
    needed = [
        t.name
        for t in desired_access(policy, kafka.settings, logins=False).topics
        # A recipient's desk topics are its own: the worker neither uses nor sees them.
        if not t.name.startswith(DESK_PREFIX)
    ]
    return await missing_topics(kafka, needed, client_id="accord-worker-check")


async def check_topics(kafka: KafkaClients, policy: Policy) -> None:
    """Refuse to start unless every topic the bundle needs exists (:func:`absent_topics`)."""
    if missing := await absent_topics(kafka, policy):
        raise ConfigError(
            f"{len(missing)} topic(s) the bundle needs do not exist or are not this worker's "
            f"(first: {missing[0]}); run 'accord kafka provision --policies DIR' as the admin"
        )


async def warn_absent_topics(kafka: KafkaClients, policy: Policy) -> None:
    """After a reload: what :func:`check_topics` would refuse at the next start, as one
    warning. The reload stands (the worker subscribes by pattern and reads a topic as soon
    as it is made); only a restart before then would stop the worker."""
    try:
        missing = await absent_topics(kafka, policy)
    except TransportError as exc:
        log.warning("policy_reload_topics_unchecked", version=policy.version, error=str(exc))
        return
    except Exception as exc:  # noqa: BLE001  # no one awaits this task: say so now, not later
        log.warning("policy_reload_topics_unchecked", version=policy.version,
                    error=type(exc).__name__)  # fmt: skip
        return
    if missing:
        log.warning(
            "policy_reload_topics_missing",
            version=policy.version,
            topics=missing,
            parties=sorted({p for t in missing if (p := party_of_ingress(t)) is not None}),
            action="run 'accord kafka provision --policies DIR' as the admin; until then "
            "no event on these topics is read, and a restart would refuse to start",
        )


def _require_signing_key(keys: FileKeyStore, now: datetime) -> None:
    """Refuse to start without a live signing key: nothing could be sealed or checkpointed."""
    try:
        live = keys.current_signing_key(Principal.WORKER).info.is_live_ts(now.timestamp())
    except KeyStoreError:
        live = False
    if not live:
        raise ConfigError(
            f"the worker's keystore ({keys.path}) has no live signing key for the worker "
            "(revoked or expired): give it a new one (accord keys rotate) before starting"
        )


class Worker:
    """One worker instance; ``await run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        options: WorkerOptions,
        *,
        kafka: KafkaClients,
        registry: CollectorRegistry,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.options = options
        self.kafka = kafka
        self.metrics = Metrics(registry)
        self.clock = clock
        self.loop: TransactionalLoop | None = None
        self.policy: Policy | None = None  # the bundle in force, for tasks started from now
        self.started = asyncio.Event()  # set once consuming (topics, state and policy ready)
        self.heartbeat = Heartbeat(settings.worker.stale_after_seconds)
        self.contact = KafkaContact(settings.worker.stale_after_seconds)
        self.metrics.kafka_answered.set_function(lambda: KafkaContact.last(self._fetching()))
        self._prepared: tuple[Policy, FileKeyStore, bytes] | None = None
        self._reload_check: asyncio.Task[None] | None = None  # held: a task not held may vanish

    def prepare(self) -> tuple[Policy, FileKeyStore, bytes]:
        """Read the bundle, the worker's keystore and its Kafka login, or refuse with one
        error: before anything reaches the network (:func:`serve` calls it before its ops
        server, whose certificate probe would otherwise speak first; :meth:`run` if not yet)."""
        settings = self.settings
        policy = load_bundle(self.options.policies)  # BundleInvalid: refuse a bad bundle
        # The worker's own keystore: its private keys, the directory, the linkage key.
        keys = FileKeyStore(
            settings.keystore_path(Principal.WORKER), settings.keystore_passphrase()
        )
        linkage_key = keys.linkage_key()  # refuse to start without it: a new one unlinks all
        _require_signing_key(keys, self.clock())
        self.kafka.check_login()
        self._prepared = (policy, keys, linkage_key)
        return self._prepared

    async def run(self, stop: asyncio.Event) -> None:
        opts, settings = self.options, self.settings
        policy, keys, linkage_key = self._prepared or self.prepare()
        self.policy = policy
        await check_topics(self.kafka, policy)
        reader, ends = await restore_state(self.kafka, keys, state_mac_key(linkage_key))
        for kind, count in reader.report.refused.items():
            self.metrics.state_refused.labels(kind=kind).inc(count)
        # Before an old worker encryption key is revoked, this must read 0 on every worker.
        self.metrics.follow_stale(reader.stale)
        tail = ChangelogTail(self.kafka, reader, ends)
        self.loop = loop = TransactionalLoop(
            self.kafka,
            client_id=f"accord-{opts.instance}",
            clock=self.clock,
            handover=tail,
            open_task=self._task_opener(keys, linkage_key),
            max_batch=opts.max_batch,
            budget=SenderBudget(opts.sender_rate, opts.sender_burst),
            heartbeat=self.heartbeat,
            membership=GroupMembership.with_session(settings.worker.group_session_timeout_ms),
            reseals=Reseals(reader),
        )
        try:
            await tail.start()
            await loop.start()
            log.info(
                "worker_started",
                instance=opts.instance,
                policy=policy.version,
                bundle=str(opts.policies.resolve()),  # which folder: a relative path says little
                consent_records=len(reader.view.consents),
                tasks_known=len(reader.view.tasks),
            )
            warn_if_plaintext(self.kafka)
            warn_if_unprotected(keys)
            self.started.set()
            watch = asyncio.create_task(follow_keys(keys, loop, stop))
            try:
                await loop.run(stop)
            finally:
                watch.cancel()
        finally:
            if self._reload_check is not None:
                self._reload_check.cancel()
            await loop.stop()
            await tail.stop()
            log.info("worker_stopped", instance=opts.instance)

    def _task_opener(self, keys: FileKeyStore, linkage_key: bytes) -> OpenTask:
        """How a partition this worker is given becomes a task: its chain resumed from its
        head, the bundle in force put on that chain first."""
        source = str(self.options.policies)

        def open_task(task: TaskId, state: WorkerState) -> tuple[Processor, list[OutRecord]]:
            policy = self.policy
            assert policy is not None  # noqa: S101  # run() loaded it before any task opens
            seq, head = state.heads.get(task.chain, (-1, GENESIS))
            chain = ChainWriter(task.chain, clock=self.clock, next_seq=seq + 1, prev_hash=head)
            processor = build_processor(
                policy=policy,
                keys=keys,
                linkage_key=linkage_key,
                state=state,
                chain=chain,
                clock=self.clock,
                envelope=self.settings.envelope,
                metrics=self.metrics,
                checkpoint_every=self.options.checkpoint_every,
            )
            # The keystore it signs with, then the bundle, under one checkpoint (``_keyset``).
            keys_now = processor.outbox.apply(opened_record(keys, self.clock()))
            return processor, keys_now + processor.policy_loaded(policy, source=source)

        return open_task

    def live(self) -> Check:
        # Kafka being away is not here: the loop goes round while aiokafka retries, and the
        # worker resumes by itself once Kafka is back, so a restart would gain nothing.
        return self.heartbeat.check()

    def ready(self) -> Check:
        """Ready once consuming with partitions assigned, the loop going round, and Kafka
        answering its fetches (within ``stale_after_seconds``: ``_contact``).

        A commit that fails ends the worker (crash-only); an idle worker commits nothing, so
        it is the fetches that say Kafka is away.
        """
        if not self.started.is_set() or self.loop is None:
            return Check(ok=False, reason="starting")
        if self.loop.assigned == 0:
            return Check(ok=False, reason="no partitions assigned")
        if not self.heartbeat.beaten:
            return Check(ok=False, reason="not consuming yet")
        return self.contact.check(self._fetching())

    def _fetching(self) -> Fetching | None:
        # The group's consumer is aiokafka's, whose public API has what Fetching reads
        # (broker.kafka's Consumer protocol names only what the loop calls).
        return cast("Fetching | None", self.loop.consumer if self.loop is not None else None)

    def request_reload(self) -> None:
        """Load the bundle again (SIGHUP); a bundle that fails its checks changes nothing.

        Every task puts it on its own chain before its next record; partitions taken on
        later start under it.
        """
        if self.loop is None:
            return
        path = self.options.policies
        try:
            policy = load_bundle(path)
        except BundleInvalid as exc:
            log.warning("policy_reload_refused", problems=len(exc.problems), first=exc.problems[0])
            return
        if self.policy is not None and policy.version == self.policy.version:
            # Said: an operator who sent SIGHUP after an edit learns it changed nothing.
            log.info("policy_unchanged", version=policy.version)
            return
        log.info("policy_reloaded", version=policy.version)
        self.policy = policy

        # After whatever is already queued for every chain (a key change's keys_loaded and
        # checkpoint, which the key watch will not queue again), never in its place.
        before = self.loop.pending_policy

        def reload(processor: Processor) -> list[OutRecord]:
            first = before(processor) if before is not None else []
            return first + processor.policy_loaded(policy, source=str(path))

        self.loop.pending_policy = reload
        # In the background: the signal handler must not wait on Kafka. A new sender's
        # ingress topic made after the reload is read without one (the subscription is a
        # pattern), so this warns and changes nothing.
        if self._reload_check is not None:
            self._reload_check.cancel()
        self._reload_check = asyncio.get_running_loop().create_task(
            warn_absent_topics(self.kafka, policy), name="accord-reload-topics"
        )


async def serve(
    worker: Worker,
    *,
    ops: OpsEndpoint | None = None,
    listening: Callable[[int], None] | None = None,
) -> None:
    """Run a worker until SIGINT/SIGTERM; SIGHUP reloads the policy bundle.

    Its ops server (``/metrics``, ``/livez``, ``/readyz``) listens where ``ops`` says, by
    default the settings' ``worker`` section; ``listening`` is told the port it bound before
    the worker starts (the one picked, for port 0: the asked-for 0 is no address).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, worker.request_reload)
    loop.set_exception_handler(quiet_leftovers)
    endpoint = ops or worker.settings.worker
    worker.prepare()  # a configuration error is the one line the operator sees
    try:
        async with serving_ops(
            endpoint,
            worker.metrics.registry,
            live=worker.live,
            ready=worker.ready,
            kafka=worker.kafka.settings,
        ) as server:
            if server is not None and listening is not None:
                listening(server.port)
            await worker.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
