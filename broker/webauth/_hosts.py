"""Which host names a web app answers to: the defence against DNS rebinding.

A page on another site can have its own name resolve to 127.0.0.1 (or to any address the
officer's browser reaches) and then drive the console there as if it were same-origin: the
browser sends that page's name in ``Host``. Refusing every name but the app's own ends it.
Loopback names are always allowed: no other site's page can send them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from broker.config import SignInSettings
from broker.errors import ConfigError

__all__ = ["LOOPBACK_NAMES", "HostCheck", "host_name", "printable_host"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104  # names, not binds
_PORT = re.compile(r"^(?::[0-9]{1,5})?$")
_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,252}$")
_PRINTABLE = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,100}$")


def _normal(name: str) -> str | None:
    """A configured name as a Host header's name part would be: lower case, no trailing
    dot, an IPv6 address in brackets; None if it is none of a name, an address or ``*``."""
    name = name.strip().lower().rstrip(".")
    if name == "*":
        return name
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return name if _NAME.fullmatch(name) and bare == name else None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def host_name(header: str | None) -> str | None:
    """The name part of a ``Host`` header (its port dropped), or None if it has none."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        name, port = header[: end + 1], header[end + 1 :]
        if end < 0:
            return None
    else:
        name, _, rest = header.partition(":")
        port = f":{rest}" if rest else ""
    if not _PORT.fullmatch(port):
        return None
    return _normal(name) if name != "*" else None


def printable_host(header: str | None) -> str:
    """A refused ``Host`` header as it may go in a log: only a plain name or address, short;
    anything else (control characters, a page's worth) as ``unprintable``."""
    return header if header is not None and _PRINTABLE.fullmatch(header) else "unprintable"


@dataclass(frozen=True, slots=True)
class HostCheck:
    """``names``: every name a request may carry in ``Host``; None: any (``*``)."""

    names: frozenset[str] | None

    @classmethod
    def of(cls, cfg: SignInSettings, *, setting: str) -> HostCheck:
        """The check ``cfg`` asks for (``setting``: its variable, for the error): the names
        listed, or else the address the app listens on; loopback names always.

        An app on a wildcard address with no list refuses to start: it answers on every
        address the host has, and which names reach it only the operator knows."""
        listed = cfg.allowed_hosts
        if listed is None:
            if cfg.host.strip().lower() in _WILDCARD_BINDS:
                raise ConfigError(
                    f"{setting} is not set, and the app listens on every address "
                    f"({cfg.host or '*'}): set it to the names browsers reach it by"
                )
            listed = (cfg.host,)
        names = set(LOOPBACK_NAMES)
        for entry in listed:
            name = _normal(entry)
            if name is None:
                raise ConfigError(
                    f"{setting}: {printable_host(entry)!s} is not a host name or address "
                    "(no port, no scheme; '*' for any)"
                )
            if name == "*":
                return cls(None)
            names.add(name)
        return cls(frozenset(names))

    def allows(self, header: str | None) -> bool:
        if self.names is None:
            return True
        name = host_name(header)
        return name is not None and name in self.names
