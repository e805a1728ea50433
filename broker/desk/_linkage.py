"""The desk's party-local linkage secret, kept in the party's keystore.

32 random bytes, made by whichever desk process starts first and read by every other (the
flag service and the web app must key a child identically), sealed under the keystore's
passphrase as its private keys are (``desk-linkage.secret``). Never leaves the party.

A desk before 2026-12-05 kept it as a plain 0600 file, ``desk-linkage.key``, in the same
folder: the first start after the upgrade moves it into the keystore, and removes the file.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Final

from broker.errors import KeyStoreError
from broker.keys import FileKeyStore

__all__ = ["LINKAGE_FILE", "LINKAGE_SECRET", "desk_linkage_key"]

LINKAGE_FILE: Final = "desk-linkage.key"  # the plain file an older desk kept
LINKAGE_SECRET: Final = "desk-linkage"  # noqa: S105  # the secret's name in the keystore
_SIZE: Final = 32


def desk_linkage_key(keys: FileKeyStore) -> bytes:
    """The party's desk linkage secret from its keystore, made there once."""
    plain = keys.path / LINKAGE_FILE
    if not plain.exists():
        return keys.local_secret(LINKAGE_SECRET)
    secret = keys.local_secret(LINKAGE_SECRET, initial=_read(plain))
    # Only once the keystore holds it: a crash before leaves the file for the next start.
    plain.unlink(missing_ok=True)
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
