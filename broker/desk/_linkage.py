"""The desk's party-local linkage secret: ``desk-linkage.key`` in the party's keystore folder.

32 random bytes, created 0600 by whichever desk process starts first and read by every other
(the flag service and the web app must key a child identically). Never leaves the party.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Final

from broker.errors import KeyStoreError

__all__ = ["LINKAGE_FILE", "desk_linkage_key"]

LINKAGE_FILE: Final = "desk-linkage.key"
_SIZE: Final = 32


def desk_linkage_key(keystore_dir: Path) -> bytes:
    """The party's desk linkage secret, created once (O_EXCL: two processes starting
    together agree on one key; the loser reads the winner's)."""
    path = Path(keystore_dir) / LINKAGE_FILE
    if not path.parent.is_dir():
        raise KeyStoreError(f"{path.parent}: no keystore folder here")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    try:
        # Written in one call: a reader that sees a short file waits for the rest (_read).
        os.write(fd, secrets.token_bytes(_SIZE))
        os.fsync(fd)
    finally:
        os.close(fd)
    return _read(path)


def _read(path: Path) -> bytes:
    for _ in range(50):
        data = path.read_bytes()
        if len(data) == _SIZE:
            if path.stat().st_mode & 0o077:
                raise KeyStoreError(f"{path}: readable by others; it must be mode 0600")
            return data
        if len(data) > _SIZE:
            break
        # Another process created it a moment ago and is writing it.
        with contextlib.suppress(OSError):
            time.sleep(0.02)
    raise KeyStoreError(f"{path}: not a desk linkage key ({_SIZE} bytes expected)")
