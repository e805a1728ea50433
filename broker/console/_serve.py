"""Running the console: the store, the audit sink, the indexer alongside, and uvicorn.

The console keeps its own index current by running an :class:`Indexer` in the same event loop
(``index=True``, the default), so an override review appears as reviewed as soon as the
indexer reads it back. Where another process already indexes the same database (``accord
demo`` runs one), pass ``index=False``: one indexer per database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from broker.audit import KeystoreAuditSigner, KeystoreAuditVerifier
from broker.config import Settings
from broker.console._app import create_app
from broker.console._deps import ConsoleDeps, IndexWait, no_wait
from broker.console._instance import FenceWatch, console_chain
from broker.console._metrics import ConsoleMetrics, ConsoleProbes
from broker.errors import UsageError
from broker.governance import AuditStore, ChainAppender, Indexer
from broker.kafka import KafkaClients, warn_if_plaintext
from broker.keys import FileKeyStore, warn_if_unprotected
from broker.ops import serving_ops
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.webauth import (
    TotpBox,
    UserFile,
    device_key,
    listen,
    server_config,
    stopped_by_sigterm,
    url_host,
)

log = structlog.get_logger("accord.console")


def _waiter(poll: float = 0.1, limit: float = 10.0) -> IndexWait:
    async def wait(done: Callable[[], bool]) -> bool:
        for _ in range(int(limit / poll)):
            if done():
                return True
            await asyncio.sleep(poll)
        return done()

    return wait


@dataclass(frozen=True, slots=True)
class ConsoleRun:
    """What a running console is serving: for the CLI to print, for the demo to reuse.
    ``accounts``: whether its users file held an account when it started."""

    url: str
    chain: str
    accounts: bool = True


async def run_console(
    settings: Settings,
    store: AuditStore,
    kafka: KafkaClients,
    *,
    policy: Policy | None,
    index: bool = True,
    started: Callable[[ConsoleRun], None] | None = None,
    stop: asyncio.Event | None = None,
    reopen: Callable[[], AuditStore] | None = None,
    instance: str | None = None,
) -> None:
    """Serve the console until ``stop`` is set (or the process is interrupted).

    ``instance`` gives it a chain of its own beside other consoles on this host
    (``console:<host>/<instance>``; without one, ``console:<host>``). Another console
    writing the same chain fences this one's writer: the page that finds it out says so,
    and the console stops, raising ``Fenced`` (broker/console/_instance.py)."""
    import uvicorn  # noqa: PLC0415  # slow import, and only the server needs it

    keys = FileKeyStore(settings.keystore_path(Principal.CONSOLE), settings.keystore_passphrase())
    verifier = KeystoreAuditVerifier(keys)
    watch = FenceWatch(chain := console_chain(instance))
    sink = ChainAppender(
        store,
        kafka=kafka,
        chain=chain,
        signer=KeystoreAuditSigner(keys, Principal.CONSOLE),
        verifier=verifier,
    )
    # Neither the second factors' key nor the device-cookie key is made here (a pod's
    # keystore may live in memory): enrolment makes them. Every sealed secret must open now,
    # not at each officer's sign-in.
    users = UserFile(
        settings.console_users_file, box=TotpBox.from_keystore(keys, "console", create=False)
    )
    users.check_second_factors()
    accounts = users.has_accounts()
    if not accounts:
        # A first start: it serves, so that add-user can run in its container, and is not
        # ready until there is an account. An unreadable file has refused above.
        log.warning("console_no_accounts", command="accord console add-user NAME")
    registry = CollectorRegistry()  # the console's metrics and its indexer's, on one endpoint
    deps = ConsoleDeps(
        store=store,
        audit=sink,
        users=users,
        linkage_key=keys.linkage_key(),
        device_key=device_key(keys, "console", users.path),
        verifier=verifier,
        settings=settings.console,
        policy=policy,
        index_wait=_waiter() if index else no_wait,
        reopen=reopen,
        metrics=ConsoleMetrics(registry),
        schools=settings.schools,
        chain=chain,
        on_fenced=watch,
    )
    cfg = settings.console
    server = uvicorn.Server(server_config(create_app(deps), cfg, cfg.port, registry=registry))
    sock = listen(cfg.host, cfg.port)
    stop = stop or asyncio.Event()
    indexer_stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(server.serve(sockets=[sock]), name="console-http")
    ]
    if index:
        indexer = Indexer(
            store, verifier, kafka, registry=registry,
            review_deadline=timedelta(days=settings.indexer.override_review_days),
            schools=settings.schools,  # Encompass deadlines on the configured school days
        )  # fmt: skip
        tasks.append(
            asyncio.create_task(indexer.run(follow=True, stop=indexer_stop), name="console-index")
        )
    probes = ConsoleProbes(
        deps.metrics,
        store,
        window=cfg.stale_after_seconds,
        serving=lambda: server.started and not tasks[0].done(),
        accounts=users.has_accounts,
    )
    ops = contextlib.AsyncExitStack()
    try:
        ops.enter_context(stopped_by_sigterm(stop, serving=lambda: server.started))
        await ops.enter_async_context(
            serving_ops(
                cfg,
                registry,
                live=probes.live,
                ready=probes.ready,
                # Kafka's certificates' expiry (no Kafka at all only in tests of the pages).
                kafka=None if kafka is None else kafka.settings,
            )
        )
        while not server.started:
            if tasks[0].done():
                await tasks[0]
                raise UsageError(f"the console could not start on {cfg.host}:{cfg.port}")
            await asyncio.sleep(0.05)
        scheme = "https" if cfg.tls_cert and cfg.tls_key else "http"  # uvicorn serves its TLS
        run = ConsoleRun(
            url=f"{scheme}://{url_host(cfg.host)}:{sock.getsockname()[1]}/",
            chain=chain,
            accounts=accounts,
        )
        log.info("console_started", url=run.url, chain=chain, index=index)
        if kafka is not None:
            warn_if_plaintext(kafka)
        warn_if_unprotected(keys)
        if started is not None:
            started(run)
        await _until([stop, watch.fenced], tasks)
        watch.check()
    finally:
        server.should_exit = True
        indexer_stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        await sink.close()
        await ops.aclose()


async def _until(events: list[asyncio.Event], tasks: list[asyncio.Task[Any]]) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    done, _ = await asyncio.wait([*waiters, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    for task in done:
        if task not in waiters:
            await task  # an indexer or server failure ends the console, with its reason


def load_console_policy(path: Path) -> Policy | None:
    return load_bundle(path) if path.is_dir() else None
