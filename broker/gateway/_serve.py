"""Running the gateway: its settings checked, the party's publisher started, and uvicorn.

``check_gateway`` refuses, each in one line and before anything listens or reaches Kafka,
a gateway that would be unsafe: no token, a non-loopback address without TLS (unless a
TLS-terminating proxy is declared in front), TLS files that do not load, or a wildcard
address with no allowed host names.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from broker.config import GatewaySettings, Settings, SignInSettings
from broker.errors import ConfigError, UsageError
from broker.gateway._app import GatewayDeps, Publishing, create_gateway_app
from broker.gateway._consent import ConsentGate, quiet_consent_refusals
from broker.gateway._ingress import IngressWrite, check_ingress, check_login
from broker.gateway._limit import AuthLimit
from broker.gateway._metrics import GatewayMetrics
from broker.kafka import KafkaClients, warn_if_plaintext
from broker.keys import FileKeyStore, KeyStore, warn_if_unprotected
from broker.ops import OK, Check, first_failure, serving_ops
from broker.sdk import Publisher
from broker.topics import CONSENT
from broker.topics import ingress as ingress_topic
from broker.webauth import HostCheck, listen, loopback, stopped_by_sigterm, url_host

if TYPE_CHECKING:
    import uvicorn

__all__ = ["GatewayRun", "check_gateway", "run_gateway"]

log = structlog.get_logger("accord.gateway")

# Where to put a token, not one.
_TOKEN_HINT = (
    "set ACCORD_GATEWAY__TOKEN_FILE to a file holding a random token of at least 32 "  # noqa: S105
    "characters (or ACCORD_GATEWAY__TOKEN)"
)


@dataclass(frozen=True, slots=True)
class GatewayRun:
    """What a running gateway serves: for the CLI to print, for tests to reach."""

    url: str
    party: str
    topic: str
    tls: bool


def _tls(cfg: GatewaySettings) -> bool:
    """Whether the gateway serves TLS; ``ConfigError`` if its files are half given or do
    not load (said now, in one line, not by uvicorn once it starts)."""
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError(
            "set both ACCORD_GATEWAY__TLS_CERT and ACCORD_GATEWAY__TLS_KEY, or neither"
        )
    if cfg.tls_cert is None or cfg.tls_key is None:
        return False
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (OSError, ssl.SSLError) as exc:  # the paths are not secret; the key never shows
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a PEM "
        raise ConfigError(
            f"ACCORD_GATEWAY__TLS_CERT/TLS_KEY: {cfg.tls_cert} and {cfg.tls_key} do not load "
            f"({reason.strip() or type(exc).__name__}; a PEM certificate and its unencrypted "
            "key)"
        ) from None
    return True


def check_gateway(cfg: GatewaySettings) -> tuple[SecretStr, HostCheck, bool]:
    """The gateway's token, the host names it answers to and whether it serves TLS; or
    ``ConfigError`` for settings that would make it unsafe."""
    if cfg.token is None:
        raise ConfigError(f"the gateway needs a bearer token: {_TOKEN_HINT}")
    tls = _tls(cfg)
    if not loopback(cfg.host) and not tls and not cfg.tls_terminated_by_proxy:
        raise ConfigError(
            f"the gateway would listen on {cfg.host or '*'}, beyond this machine, without "
            "TLS: set ACCORD_GATEWAY__TLS_CERT and ACCORD_GATEWAY__TLS_KEY, or, only behind "
            "a proxy that terminates TLS, ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY=true"
        )
    # The same rule as the console's and the desks' (a wildcard address needs a list), in
    # the gateway's terms: its callers are records systems, not browsers.
    if cfg.allowed_hosts is None and cfg.host.strip().lower() in _WILDCARD:
        raise ConfigError(
            f"the gateway would listen on every address ({cfg.host or '*'}) with "
            "ACCORD_GATEWAY__ALLOWED_HOSTS unset: set it to the host names the records "
            "systems that call the gateway use for it (comma-separated)"
        )
    for entry in cfg.allowed_hosts or ():
        _host_name(entry)
    names = SignInSettings(host=cfg.host, allowed_hosts=cfg.allowed_hosts)
    hosts = HostCheck.of(names, setting="ACCORD_GATEWAY__ALLOWED_HOSTS")
    return cfg.token, hosts, tls


_WILDCARD = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104  # names, not binds
_SAYABLE = re.compile(r"[ -~]{1,100}")  # printable ASCII, short: a setting's text, said back


def _host_name(entry: str) -> None:
    """``ConfigError`` naming ``entry`` (a setting, not a secret) if it is no host name,
    address or ``*``, saying what is wrong with it."""
    try:
        HostCheck.of(SignInSettings(host="127.0.0.1", allowed_hosts=(entry,)), setting="")
    except ConfigError:
        pass
    else:
        return
    setting = "ACCORD_GATEWAY__ALLOWED_HOSTS"
    if not _SAYABLE.fullmatch(entry):
        raise ConfigError(f"{setting}: an entry holds characters no host name has") from None
    parts = urlsplit(entry if "//" in entry else f"//{entry}")
    try:
        name = parts.hostname
        has_port = parts.port is not None
    except ValueError:
        name, has_port = None, False
    if "://" in entry or has_port or parts.path:
        hint = f" (just {name!r})" if name else ""
        raise ConfigError(
            f"{setting}: {entry!r} is not a host name: give the name alone, with no scheme, "
            f"port or path{hint}"
        ) from None
    raise ConfigError(f"{setting}: {entry!r} is not a host name or address ('*' for any)") from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_gateway(
    settings: Settings,
    party: str,
    keys: KeyStore,
    kafka: KafkaClients,
    *,
    registry: CollectorRegistry | None = None,
    publisher: Publishing | None = None,
    started: Callable[[GatewayRun], None] | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> None:
    """Serve ``party``'s gateway until ``stop`` is set (or the process is interrupted).

    ``publisher``: one already made (tests); by default the party's own ``Publisher``,
    started here (a Kafka that cannot be reached stops the start with ``TransportError``).
    A login not named after ``party``, or one Kafka says may not see the party's ingress
    topic, stops it with ``ConfigError`` (_ingress).
    """
    import uvicorn  # noqa: PLC0415  # slow import, and only the server needs it

    from broker._http_guard import guarded_http  # noqa: PLC0415  # imports uvicorn

    cfg = settings.gateway
    token, hosts, tls = check_gateway(cfg)
    check_login(kafka.principal, party, ingress_topic(party))  # before Kafka is reached
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry, unready_for=cfg.retry_after_seconds)
    own = publisher is None
    pub: Publishing = publisher or Publisher(
        party, keys, kafka, envelope=settings.envelope, clock=clock,
        send_timeout=cfg.send_timeout_seconds,
    )  # fmt: skip
    deps = GatewayDeps(
        publisher=pub, token=token, hosts=hosts, metrics=metrics,
        max_body_bytes=cfg.max_body_bytes, max_batch=cfg.max_batch,
        retry_after_seconds=cfg.retry_after_seconds, serving=lambda: server.started,
        auth_limit=AuthLimit(per_client=cfg.auth_failures_per_client,
                             total=cfg.auth_failures_total, window=cfg.auth_window_seconds,
                             spared=cfg.records_systems or ()),
        forwarded_hops=cfg.forwarded_hops, trusted_proxies=cfg.trusted_proxies or (),
        consent_gate=ConsentGate(lambda: kafka.may_describe(CONSENT)),
        ingress=IngressWrite(),
    )  # fmt: skip
    config = uvicorn.Config(
        create_gateway_app(deps), host=cfg.host, port=cfg.port,
        log_config=None, access_log=False,  # the app logs outcomes; an access log adds nothing
        lifespan="off", server_header=False, proxy_headers=False,
        ssl_certfile=cfg.tls_cert if tls else None, ssl_keyfile=cfg.tls_key if tls else None,
        **guarded_http(cfg, registry=registry),  # slow and abusive clients
    )  # fmt: skip
    server = uvicorn.Server(config)
    stop = stop or asyncio.Event()

    def ready() -> Check:
        return first_failure([lambda: OK if server.started else Check(False, "not serving"),
                              metrics.kafka_check, deps.ingress.check])  # fmt: skip

    sock = listen(cfg.host, cfg.port)
    announced = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.enter_context(stopped_by_sigterm(stop, serving=lambda: server.started))
            stack.enter_context(quiet_consent_refusals())
            await stack.enter_async_context(
                serving_ops(cfg, registry, live=lambda: OK, ready=ready, kafka=kafka.settings)
            )
            if own and isinstance(pub, Publisher):
                # Its stop is bounded (send timeout + broker.sdk STOP_GRACE): with Kafka not
                # answering, a SIGTERM abandons what the producer holds rather than wait.
                await stack.enter_async_context(pub)
            # Before it serves or says ready (its Kafka reached: the publisher has started).
            stack.callback(await _may_write(kafka, party, pub.topic, deps.ingress,
                                            cfg.retry_after_seconds))  # fmt: skip
            task = asyncio.create_task(server.serve(sockets=[sock]), name="gateway-http")
            # Before the publisher stops: a request under way still has it.
            stack.push_async_callback(_stopped, server, task, cfg.send_timeout_seconds + 5)
            while not server.started:
                if task.done():
                    await task
                    raise UsageError(f"the gateway could not start on {cfg.host}:{cfg.port}")
                await asyncio.sleep(0.05)
            scheme = "https" if tls else "http"
            run = GatewayRun(url=f"{scheme}://{url_host(cfg.host)}:{sock.getsockname()[1]}/",
                             party=party, topic=pub.topic, tls=tls)  # fmt: skip
            log.info("gateway_started", url=run.url, party=party, tls=tls)
            announced = True
            _warn(cfg, tls, kafka, keys)
            if started is not None:
                started(run)
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():
                await task  # a server failure ends the gateway, with its reason
    finally:
        sock.close()
        if announced:  # however it was stopped (SIGTERM, Ctrl-C, ``stop``): once closed
            log.info("gateway_stopped", party=party)


def _warn(cfg: GatewaySettings, tls: bool, kafka: KafkaClients, keys: KeyStore) -> None:
    """What the gateway says at every start of a weaker setting it was allowed to run with."""
    if not tls and not loopback(cfg.host):
        log.warning("gateway_plain_http", why="TLS is left to a proxy in front "
                    "(ACCORD_GATEWAY__TLS_TERMINATED_BY_PROXY): the token and events "
                    "cross the network between it and the gateway unencrypted")  # fmt: skip
    warn_if_plaintext(kafka)
    if isinstance(keys, FileKeyStore):
        warn_if_unprotected(keys)


async def _may_write(
    kafka: KafkaClients, party: str, topic: str, ingress: IngressWrite, recheck: float
) -> Callable[[], object]:
    """``ConfigError`` if Kafka says the login may not see ``topic`` (so not write it: every
    event would be refused); else ``ingress``'s watch, running, and what stops it."""

    def probe() -> Awaitable[bool | None]:
        return kafka.may_describe(topic)

    await check_ingress(probe, party, topic)
    watch = asyncio.create_task(ingress.watch(probe, recheck), name="gateway-ingress")
    return watch.cancel


async def _stopped(server: uvicorn.Server, task: asyncio.Task[None], wait: float) -> None:
    # Long enough for a request under way to be answered (its send is bounded); then it is
    # cut off, and its caller sends again under the same id (docs/gateway.md).
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, timeout=wait)
