"""The secrets a web app (the governance console, a party's desk) keeps in its owner's keystore.

Here, not in ``broker.webauth``, so that ``accord keys init`` makes them on an install with
the SDK only (no web server, no password hashing): a party enrols where its keystore is kept,
which need not be where its app runs.

- ``users-totp``: the key that seals the accounts' second factors (``broker.webauth.TotpBox``).
- ``device-cookie-<h>``: the key of the app's known-device cookies
  (``broker.webauth.DeviceCookies``), ``h`` the first 12 hex digits of SHA-256 of the
  owner's name (``console``, ``desk:PARTY``; :func:`device_secret_name`). One per owner,
  because a console and a desk (or two desks) on one host share one keystore, and an
  owner's name may hold characters a secret's may not.

Only enrolment makes them (``accord keys init``, ``console add-user``, ``desk add-user``, the
demo); a server only reads them: a key it made in a pod's memory would be lost at the next
restart. An Accord before 2026-12-06 kept the device-cookie key as a plain 0600 file,
``device-cookie.key``, beside the accounts file. A server reads that file as it is while the
keystore has no key, and so does ``add-user`` (which may run in a pod: a key moved into a
keystore held in memory would be lost, and the file with it). Only ``accord keys init`` moves
it in, the same bytes, then removes it, and only into the keystore the home's servers use
(``move``): a keystore made with ``--dir`` for another host gets a key of its own, not this
home's.

A server with neither makes a device-cookie key for this process only and says so in one
warning line. That is safe: a device cookie only lets its browser spend the device's budget
instead of the account's, so a key lost at restart fails closed, every device unknown and
the account's budget applying, as for a browser never seen before.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Final

import structlog

from broker.errors import ConfigError, KeyNotFound
from broker.keys._store import FileKeyStore

__all__ = [
    "DEVICE_SECRET",
    "LEGACY_DEVICE_FILE",
    "TOTP_SECRET_NAME",
    "device_key",
    "device_secret_name",
]

TOTP_SECRET_NAME: Final = "users-totp"  # noqa: S105  # the keystore secret's name, not a secret
DEVICE_SECRET: Final = "device-cookie"  # noqa: S105  # the keystore secrets' names' stem
LEGACY_DEVICE_FILE: Final = "device-cookie.key"  # the plain file, beside the accounts file
_KEY_BYTES: Final = 32


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
