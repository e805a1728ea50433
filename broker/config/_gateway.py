"""The HTTP publishing gateway's settings: ``accord gateway --as PARTY`` (broker/gateway)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, field_validator

from broker._words import plural
from broker.config._base import (
    AllowedHosts,
    BehindProxies,
    ClientLimits,
    NetworkList,
    OpsEndpoint,
    tls_one_way,
)

#: The shortest bearer token taken: 32 characters of ``secrets.token_urlsafe`` are ~190 bits.
MIN_TOKEN_LENGTH = 32
# What an Authorization header can carry as it is (RFC 6750's token68, and no spaces).
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


def _strong_token(value: SecretStr | None) -> SecretStr | None:
    # Never the value in a message, nor any of its characters: it is the gateway's one
    # credential. What is wrong is said by kind and count.
    if value is None:
        return value
    token = value.get_secret_value()
    ends = len(token[len(token.rstrip("\r\n")) :].replace("\r\n", "\n"))
    if ends:
        raise ValueError(
            f"ends in {plural(ends, 'line break')} (from a file, one final newline is "
            "removed, no more): write the token alone on one line"
        )
    if token != token.strip():
        raise ValueError("begins or ends with a space or tab")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"is shorter than {MIN_TOKEN_LENGTH} characters (it has {len(token)}): make one "
            "with python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not _TOKEN.fullmatch(token):
        bad = sum(1 for c in token if not _TOKEN.fullmatch(c))
        raise ValueError(
            f"may hold only letters, digits and . _ ~ + / = - (it holds "
            f"{plural(bad, 'other character')})"
        )
    return value


class GatewaySettings(OpsEndpoint, ClientLimits, BehindProxies):
    """An agency's HTTP publishing gateway, run inside the agency's own network in front of
    the SDK's ``Publisher``, with the agency's own keystore.

    Every request needs ``token`` (a bearer token, at least 32 characters; also
    ``ACCORD_GATEWAY__TOKEN_FILE``): without one the gateway does not start. It listens on
    loopback unless ``host`` says otherwise, and on any other address only with TLS
    (``tls_cert`` and ``tls_key``, PEM files), or with ``tls_terminated_by_proxy`` set, for
    a TLS-terminating proxy in front: then the gateway itself speaks plain HTTP, and says so
    at every start. Its ops server (``metrics_host``/``metrics_port``, none by default)
    serves ``/metrics``, ``/livez`` and ``/readyz`` apart from the token-guarded port."""

    host: str = "127.0.0.1"
    port: int = Field(default=8780, ge=0, le=65535)
    token: Annotated[SecretStr | None, AfterValidator(_strong_token)] = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_terminated_by_proxy: bool = False  # not with tls_cert/tls_key: one or the other
    _tls_one_way = field_validator("tls_terminated_by_proxy")(tls_one_way)
    # The names (Host header, any port) requests may carry, as for the console and desk
    # (broker.webauth.HostCheck): loopback names always; unset, the address listened on, and
    # on a wildcard address (0.0.0.0, ::) the gateway refuses to start without a list.
    allowed_hosts: AllowedHosts = None
    # A contact event is a few KiB; a batch of max_batch of them must fit.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_batch: int = Field(default=500, ge=1, le=5000)
    # A records system is waiting on the answer: Kafka must confirm within this, or the
    # answer says it did not (and whether it may have written anything).
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Retry-After on a 503 (Kafka not reachable), and how long /readyz says not ready after.
    retry_after_seconds: int = Field(default=30, ge=1, le=3600)
    # Wrong bearer tokens (broker/gateway/_limit.py): past this many 401s within the window
    # from one client address (an IPv6 one by its /48), its requests are answered 429, their
    # token not compared, until the oldest leaves the window, whatever token they carry;
    # past the total from every address together, so are those of any address that is
    # neither in records_systems nor used the right token in this process in the last day.
    auth_failures_per_client: int = Field(default=5, ge=1, le=1000)
    auth_failures_total: int = Field(default=100, ge=1, le=100_000)
    auth_window_seconds: int = Field(default=60, ge=1, le=3600)
    # The agency's records systems' addresses and ranges: never refused by the limit across
    # all addresses (their own wrong tokens still count against them). Without them, a
    # records system the gateway has not heard from since its start can be refused while
    # many addresses fail together.
    records_systems: NetworkList = ()
    # forwarded_hops, trusted_proxies (BehindProxies): behind a proxy set both, or every
    # caller is the proxy's one address to the wrong-token limit.
