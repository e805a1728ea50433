"""Assembling a worker from settings: policy, keys, state, topics, the loop, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from broker.audit import GENESIS, ChainWriter
from broker.config import OpsEndpoint, Settings
from broker.errors import BundleInvalid, ConfigError, KeyStoreError
from broker.kafka import KafkaClients, quiet_leftovers, translated
from broker.keys import FileKeyStore
from broker.ops import OK, Check, Heartbeat, serving_ops
from broker.pipeline._effects import OutRecord
from broker.pipeline._loop import TransactionalLoop
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._restore import restore_state
from broker.pipeline._state import state_mac_key
from broker.pipeline._throttle import SenderBudget
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.provision import WORKER_TRANSACTIONAL_ID, desired_access

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


async def check_topics(kafka: KafkaClients, policy: Policy) -> None:
    """Refuse to start unless every topic the bundle needs exists.

    The worker never makes topics: only the admin may create topics (and ACLs say so), with
    ``accord kafka provision``, which a new agency's onboarding runs anyway.
    """
    needed = [t.name for t in desired_access(policy, kafka.settings, logins=False).topics]
    admin = kafka.admin("accord-worker-check")
    try:
        async with translated(f"listing topics on {kafka.bootstrap}"):
            await admin.start()
            have = set(await admin.list_topics())
    finally:
        await admin.close()
    if missing := [name for name in needed if name not in have]:
        raise ConfigError(
            f"{len(missing)} topic(s) the bundle needs do not exist or are not this worker's "
            f"(first: {missing[0]}); run 'accord kafka provision --policies DIR' as the admin"
        )


# One transactional id for every worker of a cluster (the one provisioning grants): the
# worker keeps the whole consent table, replay ids and chain heads in memory, so two live
# workers would each miss what the other commits (a consent withdrawal, say). Starting a
# worker fences any other; the fenced one stops at its next commit. The instance name only
# names the audit chain and the client.
TRANSACTIONAL_ID = WORKER_TRANSACTIONAL_ID


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
        self.processor: Processor | None = None
        self.started = asyncio.Event()  # set once consuming (topics, state and policy ready)
        self.heartbeat = Heartbeat(settings.worker.stale_after_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        settings, opts = self.settings, self.options
        policy = load_bundle(opts.policies)  # BundleInvalid: refuse to start on a bad bundle
        # The worker's own keystore: its private keys, the directory, the linkage key.
        keys = FileKeyStore(settings.keystore_path(Principal.WORKER), settings.keystore.passphrase)
        keys.linkage_key()  # refuse to start without it: a new one would unlink everyone
        _require_signing_key(keys, self.clock())
        await check_topics(self.kafka, policy)
        self.loop = loop = TransactionalLoop(
            self.kafka,
            transactional_id=TRANSACTIONAL_ID,
            client_id=f"accord-{opts.instance}",
            clock=self.clock,
            max_batch=opts.max_batch,
            budget=SenderBudget(opts.sender_rate, opts.sender_burst),
            heartbeat=self.heartbeat,
        )
        # Fence first, then read the state: nothing can be committed behind what we read.
        await loop.fence()
        try:
            await self._serve(loop, policy, keys, stop)
        finally:
            await loop.stop()
            log.info("worker_stopped", instance=opts.instance)

    async def _serve(
        self, loop: TransactionalLoop, policy: Policy, keys: FileKeyStore, stop: asyncio.Event
    ) -> None:
        settings, opts = self.settings, self.options
        state, report = await restore_state(self.kafka, keys, state_mac_key(keys.linkage_key()))
        for kind, count in report.refused.items():
            self.metrics.state_refused.labels(kind=kind).inc(count)
        chain_id = Principal.WORKER.chain(opts.instance)
        seq, head = state.heads.get(chain_id, (-1, GENESIS))
        chain = ChainWriter(chain_id, clock=self.clock, next_seq=seq + 1, prev_hash=head)
        self.processor = processor = build_processor(
            policy=policy,
            keys=keys,
            linkage_key=keys.linkage_key(),
            state=state,
            chain=chain,
            clock=self.clock,
            envelope=settings.envelope,
            metrics=self.metrics,
            checkpoint_every=opts.checkpoint_every,
        )
        await loop.start(processor)
        log.info(
            "worker_started",
            instance=opts.instance,
            policy=policy.version,
            restored_events=len(state.processed),
            chain_seq=chain.next_seq,
        )
        await loop.write_alone(processor.policy_loaded(policy, source=str(opts.policies)))
        self.started.set()
        await loop.run(stop)
        await loop.write_alone(self._final_checkpoint())

    def _final_checkpoint(self) -> list[OutRecord]:
        assert self.processor is not None  # noqa: S101  # run() set it
        return self.processor.checkpoint() + self.processor.outbox.head()

    def live(self) -> Check:
        return self.heartbeat.check()

    def ready(self) -> Check:
        """Ready once consuming with partitions assigned and the loop going round.

        Kafka being away shows here only indirectly: a commit that fails ends the worker
        (crash-only), and a lost group loses its partitions.
        """
        if not self.started.is_set() or self.loop is None:
            return Check(ok=False, reason="starting")
        if self.loop.assigned == 0:
            return Check(ok=False, reason="no partitions assigned")
        if not self.heartbeat.beaten:
            return Check(ok=False, reason="not consuming yet")
        return OK

    def request_reload(self) -> None:
        """Load the bundle again (SIGHUP); a bundle that fails its checks changes nothing."""
        if self.loop is None or self.processor is None:
            return
        processor, path = self.processor, self.options.policies

        def reload() -> list[OutRecord]:
            try:
                policy = load_bundle(path)
            except BundleInvalid as exc:
                log.warning(
                    "policy_reload_refused", problems=len(exc.problems), first=exc.problems[0]
                )
                return []
            if policy.version == processor.services.policy.version:
                return []
            log.info("policy_reloaded", version=policy.version)
            return processor.policy_loaded(policy, source=str(path))

        self.loop.pending_policy = reload


async def serve(worker: Worker, *, ops: OpsEndpoint | None = None) -> None:
    """Run a worker until SIGINT/SIGTERM; SIGHUP reloads the policy bundle.

    Its ops server (``/metrics``, ``/livez``, ``/readyz``) listens where ``ops`` says, by
    default the settings' ``worker`` section.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, worker.request_reload)
    loop.set_exception_handler(quiet_leftovers)
    endpoint = ops or worker.settings.worker
    try:
        async with serving_ops(
            endpoint,
            worker.metrics.registry,
            live=worker.live,
            ready=worker.ready,
            kafka=worker.kafka.settings,
        ):
            await worker.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
