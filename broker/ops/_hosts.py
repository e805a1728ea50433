"""Which ``Host`` an ops server answers to: the defence against DNS rebinding.

A page on another site can have its own name resolve to 127.0.0.1 (or to a pod's address the
operator's browser reaches) and then read ``/metrics`` as if it were same-origin: decisions
per recipient, overrides, senders, topics. The browser sends that page's name in ``Host``.

Answered with no setting:

- an address (IPv4, or IPv6 in brackets), any port: a page loaded from an address is
  same-origin with that address only, so it cannot rebind. The kubelet's probes carry the
  pod's address (an ``httpGet`` probe's ``host`` defaults to the pod IP, and the request's
  ``Host`` is that unless the probe sets one), as does Prometheus scraping what Kubernetes
  discovery finds (a ServiceMonitor's or ``endpoints`` role's target is the pod's address
  and port); so do the Compose health checks (``http://127.0.0.1:PORT``);
- ``localhost``: loopback by RFC 6761, which browsers keep to, never asked of the network.

Every name is refused unless listed (``OpsEndpoint.metrics_allowed_hosts``), however local
it looks. A single-label name (``stats``) is resolved on Windows over LLMNR and NetBIOS,
which any machine on the same network segment may answer; ``.local`` over multicast DNS,
likewise; and a DNS search list turns a short name into one under the organisation's
domain, where an AD-integrated zone lets any authenticated user make records. So on shared
Wi-Fi a page at ``http://stats:9464/`` could reach a laptop's ``accord demo``. The Compose
render lists each scraped service's own name (Prometheus scrapes ``worker:9464``); a
Prometheus that scrapes a Service by name (``accord-worker-ops.accord``) needs that name
listed.

A name with a trailing dot is refused even if listed: it is an absolute name, ``worker.`` a
top-level domain rather than a Compose service, and no scraper sends one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from broker.config import OpsEndpoint

__all__ = ["OpsHosts"]

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
# A DNS name as the settings take it (``broker.config._base``, the same).
_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_PORT = re.compile(r"^(?::[0-9]{1,5})?$")
_PRINTABLE = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,100}$")


def _name(header: str) -> tuple[str, bool] | None:
    """The name part of a ``Host`` value, lower case, its port dropped, and whether it is an
    address (IPv4, or IPv6 in brackets); None if it is neither a name nor an address."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or not _PORT.fullmatch(header[end + 1 :]):
            return None
        try:
            return f"[{ipaddress.IPv6Address(header[1:end]).compressed}]", True
        except ValueError:
            return None
    name, colon, port = header.partition(":")
    if not _PORT.fullmatch(colon + port):
        return None
    try:
        return ipaddress.IPv4Address(name).compressed, True
    except ValueError:
        return (name, False) if _NAME.fullmatch(name) else None


def printable(header: str | None) -> str:
    """A refused ``Host`` as it may go in a log: a plain name or address, short; anything
    else (control characters, a page's worth) as ``unprintable``."""
    return header if header is not None and _PRINTABLE.fullmatch(header) else "unprintable"


@dataclass(frozen=True, slots=True)
class OpsHosts:
    """``listed``: the names answered to besides addresses and ``localhost`` (lower case)."""

    listed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, endpoint: OpsEndpoint) -> OpsHosts:
        return cls(frozenset(endpoint.metrics_allowed_hosts or ()))

    def allows(self, header: str | None) -> bool:
        # No Host at all is refused. Neither orchestrator nor Prometheus ever omits it: the
        # kubelet and Prometheus are Go's net/http, which writes Host from the URL on every
        # request (the pod's address, a target's host:port), and Python's urllib (the
        # Compose health checks) does too. HTTP/1.1 requires it (RFC 9112, 3.2: a server
        # answers 400 without it); a browser always sends it, so allowing none would not
        # let a rebinding page in, but nothing that should reach this port needs it.
        if header is None:
            return False
        parsed = _name(header)
        if parsed is None:
            return False
        name, address = parsed
        return address or name == "localhost" or name in self.listed
