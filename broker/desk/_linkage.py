"""The desk's party-local linkage secret, kept in the party's keystore.

32 random bytes that key every child the desk and its flag service see (the two must key a
child identically), sealed under the keystore's passphrase as its private keys are
(``desk-linkage.secret``). Never leaves the party.

Only enrolment makes it (``accord keys init``, ``desk add-user``, the demo:
``desk_linkage_key(..., create=True)``), as ``users-totp.secret``. A server (``accord desk``,
``accord desk flags``) only reads it, and will not start without it: one it made would key
children differently from the other process, silently breaking every flag's link to its
child, and in a pod whose keystore lives in memory it would be gone at the next restart.

A desk before 2026-12-05 kept it as a plain 0600 file, ``desk-linkage.key``, in the same
folder. Enrolment moves it into the keystore, the same bytes, and removes the file; a server
reads the file as it is, and never moves it (moved into a keystore held in memory, and the
file deleted, it would be lost).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Final

from broker.errors import ConfigError, KeyNotFound, KeyStoreError
from broker.keys import FileKeyStore

__all__ = ["LINKAGE_FILE", "LINKAGE_SECRET", "desk_linkage_key"]

LINKAGE_FILE: Final = "desk-linkage.key"  # the plain file an older desk kept
LINKAGE_SECRET: Final = "desk-linkage"  # noqa: S105  # the secret's name in the keystore
_SIZE: Final = 32


def desk_linkage_key(keys: FileKeyStore, *, party: str = "PARTY", create: bool = False) -> bytes:
    """The party's desk linkage secret from its keystore.

    ``create`` (enrolment only) makes it there if it has none, moving an older desk's plain
    file in. Without it (a server), the keystore's secret, else the plain file's, read as it
    is; neither is a ``ConfigError`` naming the keystore and the command (for ``party``) that
    makes it.
    """
    plain = keys.path / LINKAGE_FILE
    if create:
        if not plain.exists():
            return keys.local_secret(LINKAGE_SECRET)
        secret = keys.local_secret(LINKAGE_SECRET, initial=_read(plain))
        # Only once the keystore holds it: a crash before leaves the file to move again.
        plain.unlink(missing_ok=True)
        return secret
    try:
        secret = keys.local_secret(LINKAGE_SECRET, create=False)
    except KeyNotFound:
        if plain.exists():
            return _read(plain)
        raise ConfigError(
            f"the keystore at {keys.path} has no desk linkage secret: make it once with "
            f"'accord keys init --party {party}' (or 'accord desk add-user --as {party} NAME') "
            "where the keystore is kept, then start the desk and its flag service"
        ) from None
    if plain.exists() and _read(plain) != secret:
        raise KeyStoreError(
            f"{plain} and the keystore's desk-linkage.secret hold different secrets: children "
            "would be keyed two ways; keep the one this desk's flags were raised under "
            "(docs/desk.md, Running it)"
        )
    return secret


def _read(path: Path) -> bytes:
    for _ in range(50):
        data = path.read_bytes()
        if len(data) == _SIZE:
            if path.stat().st_mode & 0o077:
                raise KeyStoreError(f"{path}: readable by others; it must be mode 0600")
            return data
        if len(data) > _SIZE:
            break
        # An older desk created it a moment ago and is writing it.
        with contextlib.suppress(OSError):
            time.sleep(0.02)
    raise KeyStoreError(f"{path}: not a desk linkage key ({_SIZE} bytes expected)")
