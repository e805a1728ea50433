"""The linkage key: the secret behind subject keys (``broker.linkage``), kept with the keys."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from broker.errors import KeyStoreError

__all__ = ["load_linkage_key"]

_KEY_FILE = "linkage.key"


def load_linkage_key(keys_dir: Path, *, create: bool = False) -> bytes:
    """Read the linkage key (32 bytes, file mode 0600), creating it when asked and absent."""
    path = keys_dir / _KEY_FILE
    if not path.exists() and create:
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # a concurrent creator wins; we read theirs
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(f"no linkage key at {path}; run 'accord keys init'") from None
    if len(key) != 32:
        raise KeyStoreError(f"the linkage key at {path} is not 32 bytes")
    return key
