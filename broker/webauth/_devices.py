"""Known-device cookies: proof that this browser has signed in as this account before.

Issued at each successful sign-in, the cookie lets :class:`SignInThrottle` charge the next
attempts to the device's own budget instead of the account's, so an attacker hammering an
officer's name elsewhere cannot keep that officer out (OWASP's "device cookies").

The cookie is ``<device id>.<expiry>.<HMAC-SHA256>``: the MAC binds the account's name and
its credential stamp (:meth:`UserFile.stamp`), so a reset password or a removed account
makes every device cookie of the old credential worthless, and the name itself need not be
in the cookie.

The key is a 32-byte secret of the owner's keystore, ``device-cookie-<h>.secret``: made,
named and read by :func:`broker.keys.device_key` (re-exported here), which says where it is
kept, who makes it, and what a server does without one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

# Made by ``accord keys init`` too, which must run without the web apps' dependencies.
from broker.keys import device_key, device_secret_name

__all__ = ["DeviceCookies", "device_key", "device_secret_name"]

_LABEL = b"accord/console/device/v1"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeviceCookies:
    def __init__(
        self, key: bytes, *, lifetime: timedelta, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def issue(self, name: str, stamp: str) -> str:
        device = secrets.token_urlsafe(16)
        expires = str(int((self._clock() + self._lifetime).timestamp()))
        return f"{device}.{expires}.{self._mac(name, stamp, device, expires)}"

    def device(self, token: str | None, name: str, stamp: str | None) -> str | None:
        """The device id when ``token`` is a live cookie of ``name``'s current credential."""
        if not token or stamp is None or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
            return None
        device, expires, mac = parts
        if not hmac.compare_digest(
            mac.encode("ascii", "replace"), self._mac(name, stamp, device, expires).encode()
        ):
            return None
        if int(expires) <= self._clock().timestamp():
            return None
        return device

    def _mac(self, name: str, stamp: str, device: str, expires: str) -> str:
        message = b"\x00".join(
            (_LABEL, name.encode(), stamp.encode(), device.encode("utf-8", "replace"),
             expires.encode())
        )  # fmt: skip
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
