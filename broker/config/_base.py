"""What the settings models share: frozen models, a long-running process's ops server, a
web front end's proxies and what it allows a connection.

Apart from ``_settings`` so that a section with a module of its own (``_gateway``) can build
on them without importing the module that gathers every section.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)


def _host_list(value: object) -> object:
    # From the environment: "a.example, b.example" as well as a JSON list.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: Host names, comma-separated or a JSON list; unset (None) is the field's default.
HostList = Annotated[tuple[str, ...] | None, BeforeValidator(_host_list)]


def _listed(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    # An empty value (a stray `ACCORD_DESK__ALLOWED_HOSTS=` line in an env file, " ", "[]")
    # lists no name: the app then answered loopback names alone, refusing everyone who
    # reached it by name while /readyz said ok, and passed the wildcard address's check that
    # unset fails. Nobody means that: refused at the start, as unset is on a wildcard address.
    if value is not None and not value:
        raise ValueError(
            "empty: set it to the host names the app is reached by (comma-separated), or "
            "leave it unset for the address it listens on"
        )
    return value


#: The host names a web front end answers to (``broker.webauth.HostCheck``): unset, or at
#: least one.
AllowedHosts = Annotated[HostList, AfterValidator(_listed)]


def tls_one_way(value: bool, info: ValidationInfo) -> bool:
    """``tls_terminated_by_proxy``, refused when the app's own TLS files are set too.

    Each says where TLS ends: at the app (it serves TLS, so a proxy in front cannot be what
    terminates it) or at a proxy (the app speaks plain HTTP). Both was served as TLS without
    a word; which the operator meant, only they know. A field's error, so that the one line
    names this variable (``load_settings``); the files are declared before it, so ``data``
    holds them."""
    if value and (info.data.get("tls_cert") is not None or info.data.get("tls_key") is not None):
        raise ValueError(
            "true while TLS_CERT/TLS_KEY are set: say where TLS ends, at the app (TLS_CERT "
            "and TLS_KEY) or at a proxy in front (TLS_TERMINATED_BY_PROXY=true), not both"
        )
    return value


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
# A DNS name as the ops server reads it from ``Host`` (``broker.ops._hosts``, the same).
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def _ops_names(value: tuple[str, ...] | None) -> tuple[str, ...]:
    # Said by position, never quoted: settings messages never carry a value.
    names = []
    for n, entry in enumerate(value or (), 1):
        name = entry.strip().lower().removesuffix(".")
        bare = name.removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            if not _DNS_NAME.fullmatch(name):
                raise ValueError(
                    f"entry {n} is not a host name (a name alone: no scheme, port, path or '*')"
                ) from None
            names.append(name)
        # An address needs no listing: every address is answered.
    return tuple(names)


#: The extra names an ops server answers to (``broker.ops._hosts``): names only, lower case.
# Optional only so that the environment's "a, b" is read as HostList's is (pydantic-settings
# parses a field that can only be a tuple as JSON); unset or null is no names.
OpsHostList = Annotated[HostList, AfterValidator(_ops_names)]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ranges(value: object) -> object:
    # From the environment: "10.0.0.0/8, 192.0.2.7" as well as a JSON list; said by
    # position, never quoted, like every settings message.
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        return value
    out = []
    for n, entry in enumerate(value, 1):
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            raise ValueError(f"entry {n} is not an address or a range (192.0.2.0/24)") from None
        # An IPv4 peer on a dual-stack socket is compared as IPv4 (client_host), so a range
        # written IPv4-mapped would never match anyone: refused rather than silently inert.
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            raise ValueError(f"entry {n} is an IPv4-mapped range: write it as IPv4 (10.0.0.0/8)")
        out.append(network)
    return tuple(out)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


#: Addresses and ranges (an address alone is its own range), comma-separated or a JSON list.
# Optional only so that the environment's "a, b" is read as a list (pydantic-settings parses
# a field that can only be a tuple as JSON); unset or null is none.
NetworkList = Annotated[tuple[Network, ...] | None, BeforeValidator(_ranges)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpsEndpoint(Frozen):
    """A long-running process's ops server: ``/metrics``, ``/livez``, ``/readyz``
    (broker/ops). Loopback by default: metrics are not exposed on a network unless asked
    (set ``metrics_host`` to ``0.0.0.0`` or a pod address for an external Prometheus).
    ``metrics_port`` unset: no ops server."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # The names (Host header, any port) the ops server answers to besides addresses and
    # localhost, which it always does. Any other is refused (400), a short or cluster-looking
    # one too (LLMNR, mDNS and search lists let others answer those): a DNS-rebinding page
    # cannot read the metrics. Comma-separated or a JSON list; names alone, no '*'.
    metrics_allowed_hosts: OpsHostList = ()
    # Not live once the main loop has not gone round for this long (idle, the worker's goes
    # round every 200 ms, at each empty fetch; a batch commit or a slow database may take a
    # few seconds).
    stale_after_seconds: float = Field(default=30.0, gt=0, le=3600)


class ClientLimits(Frozen):
    """What one HTTP server of Accord's (a gateway, the console, a desk) allows a client's
    connection: ``broker._http_guard.guarded_http`` reads these (docs/operations.md, Slow and
    abusive clients)."""

    # A whole request (headers and body) must arrive within this, counted from the
    # connection's start or the end of the previous answer on it; a client that trickles a
    # byte at a time gains nothing. Then it is answered 408 (if nothing was yet) and closed.
    request_deadline_seconds: float = Field(default=30.0, gt=0, le=300)
    # Open connections at once; a new one past it is closed at once. Lowered at the start to
    # fit under the process's open-file limit (ulimit -n), leaving room for Kafka's and the
    # database's connections.
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    # An answer the client does not read: while any of it waits past the socket, 64 KiB of
    # it (or all that is left) must leave within each such time, however big the page,
    # else the connection is dropped (a client that stops reading would hold it for ever).
    # A reader needs about 64 KiB per this (2 KiB/s at 30 s), never the whole page in it.
    write_stall_seconds: float = Field(default=30.0, gt=0, le=300)


class BehindProxies(Frozen):
    """Who says which address a request came from, for a web front end's limits that count
    by address (the console's and a desk's sign-in throttle, a gateway's wrong-token limit):
    ``broker.webauth.client_host`` reads these."""

    # Proxies in front, each appending the address it was reached from to X-Forwarded-For:
    # the client is that entry counted from the end, which no client can choose (an entry it
    # sends itself stays to the left), but only on a connection from trusted_proxies; from
    # any other address (one who reaches the port past the proxy) the connection's own is the
    # client's, whatever the request says (as uvicorn's forwarded_allow_ips). 0: never read,
    # from loopback neither (a local user, an ssh tunnel or a DNS-rebinding page is no
    # proxy). Behind a proxy set both, or every caller is the proxy's one address.
    forwarded_hops: int = Field(default=0, ge=0, le=5)
    # Checked even when left unset (validate_default), so that hops without it are refused.
    trusted_proxies: NetworkList = Field(default=(), validate_default=True)

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _proxies_named(
        cls, value: tuple[Network, ...] | None, info: ValidationInfo
    ) -> tuple[Network, ...] | None:
        # Hops with nobody trusted would read no header and count every caller as the
        # proxy: one guesser (one stale token) would then hold up everyone behind it. A
        # field's error, not the model's, so that the one line names the variable to set
        # (ACCORD_CONSOLE__TRUSTED_PROXIES, load_settings) and not only its section.
        if info.data.get("forwarded_hops") and not value:
            raise ValueError(
                "empty while FORWARDED_HOPS is set: set it to the proxies' addresses "
                "(X-Forwarded-For is believed only from them)"
            )
        return value
