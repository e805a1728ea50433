"""The names of an app's two cookies: its session, and its known-device proof.

Browsers keep cookies by host name, not by port: two desks and the console on one host
(each at ``127.0.0.1:<port>``, as a Compose deployment publishes them) would otherwise
overwrite one another's session, and one app's device cookie another's. So each app's names
are its own: ``accord_console_…``, ``accord_desk_<party>_…``.

With Secure cookies the session's name carries the ``__Host-`` prefix (the browser then
keeps it only if it is Secure, for ``/``, with no ``Domain``: no sibling host can set or
shadow it); the device cookie, kept for ``/login`` only, the ``__Secure-`` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CookieNames", "cookie_names"]

# A cookie name is an HTTP token; party ids are [a-z0-9-] already, but a name is made
# safe whatever it is given, and two different ids never map to one name.
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def _token(part: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"_{b:02x}" for b in m.group().encode()), part)


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    device: str


def cookie_names(app: str, party: str | None = None, *, secure: bool) -> CookieNames:
    """``app`` (``console``, ``desk``)'s cookie names; a desk's name its ``party``."""
    base = "accord_" + _token(app) + ("" if party is None else "_" + _token(party))
    if secure:
        return CookieNames(f"__Host-{base}_session", f"__Secure-{base}_device")
    return CookieNames(f"{base}_session", f"{base}_device")
