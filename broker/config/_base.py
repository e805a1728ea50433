"""What the settings models share: frozen models, and a long-running process's ops server.

Apart from ``_settings`` so that a section with a module of its own (``_gateway``) can build
on them without importing the module that gathers every section.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _host_list(value: object) -> object:
    # From the environment: "a.example, b.example" as well as a JSON list.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


#: The host names a web front end answers to (``broker.webauth.HostCheck``).
HostList = Annotated[tuple[str, ...] | None, BeforeValidator(_host_list)]

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
