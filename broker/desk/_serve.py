"""Running the desk: the party's subscriber and publisher, the ingest loop, and uvicorn.

``run_desk`` checks what it is given before anything listens: the party must be a recipient
of the bundle (a co-ordinating team, hub or school) and the keystore must hold its private key
(else nothing delivered could be opened), each a one-line error. Given what opens its store
rather than the store, it opens it only once those checks have passed and the port is bound: a
refused start leaves no store made, and claimed, for a desk that never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from broker.config import Settings
from broker.desk._app import create_desk_app
from broker.desk._deps import DeskDeps
from broker.desk._flags_fresh import FlagsFreshness
from broker.desk._ingest import DeskIngest, flags_consumer, stop_consumer
from broker.desk._ingest_held import DeliveriesHeld
from broker.desk._probes import DeskProbes, KafkaContact
from broker.desk._received import receives_nhs_numbers
from broker.desk._sighup import sighup_ignored
from broker.desk._store import DeskStore
from broker.errors import ConfigError, UsageError
from broker.kafka import Consumer, KafkaClients, warn_if_plaintext
from broker.keys import FileKeyStore, desk_linkage_key, warn_if_unprotected
from broker.ops import serving_ops
from broker.policy import Policy
from broker.sdk import Publisher, Subscriber, default_replay_file
from broker.topics import desk_prefix
from broker.webauth import (
    HostCheck,
    TotpBox,
    UserFile,
    device_key,
    listen,
    server_config,
    stopped_by_sigterm,
    url_host,
)

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DeskRun", "check_desk_party", "run_desk"]

log = structlog.get_logger("accord.desk")


@dataclass(frozen=True, slots=True)
class DeskRun:
    """What a running desk is serving; ``accounts``: whether its users file held an account
    when it started."""

    url: str
    party: str
    accounts: bool = True


def check_desk_party(policy: Policy, party: str) -> str:
    """The party's kind, if it may run a desk; else a one-line error."""
    return policy.bundle.desk_kind(party, option="--as")


class _Also:
    """The pages' collectors, on the ops server's registry too: that one has more (when the
    Kafka certificates expire, when Kafka last answered), which the public pages must not
    show."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def _ops_metrics(
    pages: CollectorRegistry, kafka: KafkaClients, party: str
) -> tuple[CollectorRegistry, KafkaContact, DeliveriesHeld]:
    """The ops server's registry (the pages' collectors and its own), its Kafka contact and
    whether its deliveries are held."""
    registry = CollectorRegistry()
    registry.register(_Also(pages))
    contact = KafkaContact(
        registry, lambda: kafka.consumer(client_id=f"accord-desk-{party}-contact")
    )
    return registry, contact, DeliveriesHeld(registry)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _publishes(policy: Policy, party: str) -> bool:
    return any(
        party in clause.from_
        for agreement in policy.bundle.agreements
        for clause in agreement.clauses
    )


def _party_clients(
    settings: Settings,
    party: str,
    policy: Policy,
    kafka: KafkaClients,
    clock: Callable[[], datetime],
) -> tuple[FileKeyStore, Subscriber, Publisher | None]:
    """The party's own keystore, its subscriber (group ``<party>.desk``) and, if any clause
    sends from it, its publisher."""
    keys_dir = settings.keystore_path(party)
    keys = FileKeyStore(keys_dir, settings.keystore_passphrase())
    if party not in keys.private_parties():
        raise ConfigError(f"the keystore at {keys_dir} holds no private key for {party}")
    warn_if_unprotected(keys)
    group = f"{party}.desk"
    # A person waits on every send, so each has the desk's short limit, and each is a
    # transaction: one given up on (the page said it failed) is never recorded later
    # (broker.sdk._bounded). The ids are this process's own (the party may use transactional
    # ids under its desk prefix), so a second desk, or one starting as another stops, does
    # not fence it.
    run, limit = secrets.token_hex(4), settings.desk.send_timeout_seconds
    subscriber = Subscriber(
        party, keys, kafka, group, envelope=settings.envelope, clock=clock,
        replay_memory=default_replay_file(group, settings.home),
        send_timeout=limit, transactional_id=f"{desk_prefix(party)}acks.{run}",
        skip_key_problems=settings.desk.skip_key_problems,
    )  # fmt: skip
    publisher = (
        Publisher(party, keys, kafka, envelope=settings.envelope, clock=clock,
                  send_timeout=limit, transactional_id=f"{desk_prefix(party)}sends.{run}")
        if _publishes(policy, party)
        else None
    )  # fmt: skip
    return keys, subscriber, publisher


def _users(settings: Settings, keys: FileKeyStore, party: str) -> UserFile:
    """The desk's accounts, every sealed second factor opened now rather than at each
    sign-in. None yet is a first start, not a fault: the desk serves, so that add-user can
    run in its container, and is not ready until there is one. An unreadable file refuses."""
    box = TotpBox.from_keystore(keys, f"desk:{party}", create=False)
    users = UserFile(settings.desk_users_file(party), box=box)
    users.check_second_factors()
    if not users.has_accounts():
        log.warning(
            "desk_no_accounts", party=party, command=f"accord desk add-user --as {party} NAME"
        )
    return users


async def _started_flags(
    stack: contextlib.AsyncExitStack, kafka: KafkaClients, party: str
) -> Consumer | None:
    """The team's flags consumer, started (None if it would not start: the desk runs on).
    Made only once the desk's own clients stand: one made before them and never started is
    reported unclosed after the error line when Kafka is down."""
    flags = flags_consumer(kafka, party)
    stack.push_async_callback(stop_consumer, flags)
    try:
        await flags.start()
    except Exception as exc:  # noqa: BLE001  # flags are optional: the desk runs on
        log.warning("desk_flags_unavailable", error=type(exc).__name__)
        return None
    return flags


def _watch_freshness(stack: contextlib.AsyncExitStack, deps: DeskDeps, stop: asyncio.Event) -> None:
    """A co-ordinating team's desk asks how far its flag service has read, till it stops.
    Not a probe's task: a desk whose check fails still serves (the home page says so)."""
    if deps.flags_freshness is not None:
        task = asyncio.create_task(deps.flags_freshness.run(stop), name="desk-flags-fresh")
        stack.push_async_callback(_cancelled, task)


def _signals(
    stack: contextlib.AsyncExitStack, stop: asyncio.Event, serving: Callable[[], bool], party: str
) -> None:
    """SIGTERM stops the desk as Ctrl-C does; SIGHUP, which reloads the worker, is logged
    and ignored: a desk cannot reload, and must not die of it either."""
    stack.enter_context(stopped_by_sigterm(stop, serving=serving))
    stack.enter_context(sighup_ignored("desk_sighup_ignored", party=party))


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class _App(NamedTuple):
    server: uvicorn.Server
    deps: DeskDeps
    ops_registry: CollectorRegistry
    contact: KafkaContact
    held: DeliveriesHeld
    owned: DeskStore | None  # opened here, for run_desk to close


def _app(
    *, settings: Settings, party: str, policy: Policy, kind: str,
    store: DeskStore | Callable[[], DeskStore], users: UserFile, subscriber: Subscriber,
    publisher: Publisher | None, linkage_key: bytes, cookie_key: bytes, kafka: KafkaClients,
    clock: Callable[[], datetime], sock: socket.socket,
) -> _App:  # fmt: skip
    """The desk's app and server on its store, opened now if given as its opener (once
    every check has passed). Either refusing, the socket and a store opened here are closed."""
    import uvicorn  # noqa: PLC0415  # slow import, and only the server needs it

    owned = None
    try:
        if callable(store):
            store = owned = store()
        # The pages' /metrics (no sign-in, behind the public proxy) shows what it always
        # has; the ops server's, on the private network, shows those and its own.
        registry, cfg = CollectorRegistry(), settings.desk
        ops_registry, contact, held = _ops_metrics(registry, kafka, party)
        deps = DeskDeps(
            party=party, party_name=policy.bundle.parties[party].name, kind=kind, store=store,
            users=users, acks=subscriber, linkage_key=linkage_key, device_key=cookie_key,
            settings=cfg, schools=settings.schools, publisher=publisher,
            party_names={p: v.name for p, v in policy.bundle.parties.items()}, clock=clock,
            registry=registry, deliveries_held=held, kafka_contact=contact,
            flags_freshness=FlagsFreshness(kafka, party, clock)
            if kind == "coordinating_team" else None,
            nhs_numbers_received=receives_nhs_numbers(policy.bundle, party),
        )  # fmt: skip
        app = create_desk_app(deps)
        server = uvicorn.Server(server_config(app, cfg, cfg.port, registry=registry))
    except BaseException:
        sock.close()
        if owned is not None:
            owned.close()
        raise
    return _App(server, deps, ops_registry, contact, held, owned)


async def run_desk(  # noqa: PLR0915 - a start in the order its refusals need, kept in one place
    settings: Settings,
    party: str,
    policy: Policy,
    store: DeskStore | Callable[[], DeskStore],
    kafka: KafkaClients,
    *,
    started: Callable[[DeskRun], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> None:
    """Serve the desk for ``party`` until ``stop`` is set (or the process is interrupted).
    ``store``: the desk's store, or what opens it (opened last, and closed here)."""
    kind = check_desk_party(policy, party)
    keys, subscriber, publisher = _party_clients(settings, party, policy, kafka, clock)
    cfg = settings.desk
    # None of the keystore's secrets is made here (a pod's keystore may live in memory, and
    # a linkage secret made here would key children unlike the flag service's): enrolment
    # makes them. Every sealed second factor must open now, not at each sign-in.
    linkage_key = desk_linkage_key(keys, party=party)
    users = _users(settings, keys, party)
    accounts = users.has_accounts()
    cookie_key = device_key(keys, users.owner, users.path)
    # The app's refusal (no allowed host names) before the socket, the socket before the
    # store: a desk refused leaves neither a port held nor a store made.
    HostCheck.of(cfg, setting="ACCORD_DESK__ALLOWED_HOSTS")
    sock = listen(cfg.host, cfg.port)
    server, deps, ops_registry, contact, held, owned = _app(
        settings=settings, party=party, policy=policy, kind=kind, store=store, users=users,
        subscriber=subscriber, publisher=publisher, linkage_key=linkage_key,
        cookie_key=cookie_key, kafka=kafka, clock=clock, sock=sock,
    )  # fmt: skip
    stop = stop or asyncio.Event()
    probes = DeskProbes(server_started=lambda: server.started, accounts=users.has_accounts)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sock.close)  # a start that fails past here must not leave it open
        if owned is not None:
            stack.callback(owned.close)  # last: after the pages and the ingest loop stop
        _signals(stack, stop, lambda: server.started, party)
        # First, so that /livez answers while the party's clients connect.
        await stack.enter_async_context(
            serving_ops(cfg, ops_registry, live=probes.live, ready=probes.ready,
                        kafka=kafka.settings)
        )  # fmt: skip
        stack.push_async_callback(contact.close)
        await stack.enter_async_context(subscriber)
        if publisher is not None:
            await stack.enter_async_context(publisher)
        flags = await _started_flags(stack, kafka, party) if kind == "coordinating_team" else None
        ingest = DeskIngest(deps.store, subscriber, linkage_key=linkage_key, clock=clock,
                            flags=flags, contact=contact, held=held)  # fmt: skip
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(server.serve(sockets=[sock]), name="desk-http"),
            asyncio.create_task(ingest.run(stop, interval=cfg.poll_seconds), name="desk-ingest"),
        ]
        _watch_freshness(stack, deps, stop)
        probes.watch(*tasks)
        try:
            while not server.started:
                if tasks[0].done():
                    await tasks[0]
                    raise UsageError(f"the desk could not start on {cfg.host}:{cfg.port}")
                await asyncio.sleep(0.05)
            scheme = "https" if cfg.tls_cert and cfg.tls_key else "http"  # uvicorn's TLS
            url = f"{scheme}://{url_host(cfg.host)}:{sock.getsockname()[1]}/"
            run = DeskRun(url=url, party=party, accounts=accounts)
            log.info("desk_started", url=run.url, party=party, kind=kind)
            warn_if_plaintext(kafka)
            if started is not None:
                started(run)
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            for task in done:
                if task is not waiter:
                    await task  # a failure ends the desk, with its reason
        finally:
            stop.set()
            server.should_exit = True
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=10)
