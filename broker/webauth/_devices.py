"""Known-device cookies: proof that this browser has signed in as this account before.

Issued at each successful sign-in, the cookie lets :class:`SignInThrottle` charge the next
attempts to the device's own budget instead of the account's, so an attacker hammering an
officer's name elsewhere cannot keep that officer out (OWASP's "device cookies").

The cookie is ``<device id>.<expiry>.<HMAC-SHA256>``: the MAC binds the account's name and
its credential stamp (:meth:`UserFile.stamp`), so a reset password or a removed account
makes every device cookie of the old credential worthless, and the name itself need not be
in the cookie. The key is random, made once beside the accounts file (0600) so that cookies
outlive a console restart; deleting the file forgets every device.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.errors import ConfigError

__all__ = ["DEVICE_COOKIE", "DeviceCookies", "device_key"]

DEVICE_COOKIE = "accord_device"
_KEY_BYTES = 32
_LABEL = b"accord/console/device/v1"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def device_key(path: Path) -> bytes:
    """The device-cookie key in ``path``, made (0600, atomically) the first time."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(_KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            # link, not replace: two consoles starting together must end up with one key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the console's device-cookie key") from exc
    if len(key) != _KEY_BYTES:
        raise ConfigError(f"{path}: not a device-cookie key (delete it to make a new one)")
    return key


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
