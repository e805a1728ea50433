"""Known-device cookies: proof that this browser has signed in as this account before.

Issued at each successful sign-in, the cookie lets :class:`SignInThrottle` charge the next
attempts to the device's own budget instead of the account's, so an attacker hammering an
officer's name elsewhere cannot keep that officer out (OWASP's "device cookies").

The cookie is ``<device id>.<expiry>.<HMAC-SHA256>``: the MAC binds the account's name and
its credential stamp (:meth:`UserFile.stamp`), so a reset password or a removed account
makes every device cookie of the old credential worthless, and the name itself need not be
in the cookie.

The key is a 32-byte secret of the owner's keystore (the console's; the desk party's),
sealed under its passphrase as ``users-totp.secret`` is: ``device-cookie-<h>.secret``, ``h``
the first 12 hex digits of SHA-256 of the owner's name (``console``, ``desk:PARTY``;
:func:`device_secret_name`). One per owner, because a console and a desk (or two desks) on
one host share one keystore, and an owner's name may hold characters a secret's may not.

Only enrolment makes it (``accord keys init``, ``console add-user``, ``desk add-user``, the
demo); a server only reads it: a key it made in a pod's memory would be lost at the next
restart. An Accord before 2026-12-06 kept it as a plain 0600 file, ``device-cookie.key``,
beside the accounts file. A server reads that file as it is while the keystore has no key,
and so does ``add-user`` (which may run in a pod: a key moved into a keystore held in memory
would be lost, and the file with it). Only ``accord keys init`` moves it in, the same bytes,
then removes it, and only into the keystore the home's servers use (``move``): a keystore
made with ``--dir`` for another host gets a key of its own, not this home's.

A server with neither makes a key for this process only and says so in one warning line.
That is safe: a device cookie only lets its browser spend the device's budget instead of the
account's, so a key lost at restart fails closed, every device unknown and the account's
budget applying, as for a browser never seen before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import structlog

from broker.errors import ConfigError, KeyNotFound

if TYPE_CHECKING:
    from pathlib import Path

    from broker.keys import FileKeyStore

__all__ = ["DEVICE_COOKIE", "DeviceCookies", "device_key", "device_secret_name"]

DEVICE_COOKIE = "accord_device"
DEVICE_SECRET: Final = "device-cookie"  # noqa: S105  # the keystore secrets' names' stem
LEGACY_DEVICE_FILE: Final = "device-cookie.key"  # the plain file, beside the accounts file
_KEY_BYTES = 32
_LABEL = b"accord/console/device/v1"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def device_secret_name(owner: str) -> str:
    """The name of the keystore secret holding ``owner``'s device-cookie key."""
    return f"{DEVICE_SECRET}-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"


def device_key(
    keys: FileKeyStore,
    owner: str,
    users_file: Path | None,
    *,
    create: bool = False,
    move: bool = False,
) -> bytes:
    """The device-cookie key of ``owner``'s web app (``console``, ``desk:PARTY``), whose
    accounts are ``users_file``, from ``keys`` (``owner``'s keystore).

    A server (neither flag): the keystore's key; else the bytes of an older plain file beside
    ``users_file``, read as it is; else a key for this process only, with one warning line.
    ``create`` (``add-user``, the demo): the same, but a new key is made in the keystore when
    there is neither; the keystore and the file are otherwise left as they are. ``move``
    (``accord keys init`` on the keystore the home's servers use; implies ``create``): the
    older file's bytes become the keystore's key, and the file is then removed. ``users_file``
    None: no older file belongs to this keystore (one made with ``--dir``).
    """
    name = device_secret_name(owner)
    legacy = None if users_file is None else users_file.parent / LEGACY_DEVICE_FILE
    try:
        key: bytes | None = keys.local_secret(name, create=False)
    except KeyNotFound:
        key = None
    if key is None:
        old = None if legacy is None else _read_legacy(legacy)
        if old is not None and not move:
            return old
        if not (create or move):
            return _for_this_process(keys, owner)
        key = keys.local_secret(name, initial=old)
    if move and legacy is not None and _read_legacy(legacy) == key:
        # Only once the keystore holds it: a crash before leaves the file to move again.
        legacy.unlink(missing_ok=True)
    return key


def _for_this_process(keys: FileKeyStore, owner: str) -> bytes:
    structlog.get_logger("accord.web").warning(
        "device_key_ephemeral",
        keystore=str(keys.path),
        why=(
            f"the keystore has no {device_secret_name(owner)} secret, so browsers' known-device "
            "cookies last only until this process restarts (their sign-ins then count against "
            f"the account's budget): make it with 'accord keys init --party "
            f"{owner.removeprefix('desk:')}' where the keystore is kept, then restart"
        ),
    )
    return secrets.token_bytes(_KEY_BYTES)


def _read_legacy(path: Path) -> bytes | None:
    """The key an older Accord kept in the plain file ``path``; None if there is none."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the older device-cookie key") from exc
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"{path}: not a device-cookie key (delete it: devices signed in before are then "
            "unknown once)"
        )
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
