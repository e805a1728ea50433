"""The desk's party-local linkage secret: ``desk-linkage.key`` in the party's keystore folder.

Both desk processes (the flag service and the web app) key a child with it
(:func:`broker.desk.child_key`); whichever starts first makes it (32 random bytes, 0600,
linked into place so two starting together end up with one key).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from broker.errors import ConfigError

__all__ = ["desk_linkage_key"]

_FILE = "desk-linkage.key"
_KEY_BYTES = 32


def desk_linkage_key(keystore_dir: Path) -> bytes:
    path = keystore_dir / _FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(_KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot make the desk's linkage key") from exc
        finally:
            tmp.unlink(missing_ok=True)
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the desk's linkage key") from exc
    if len(key) != _KEY_BYTES:
        raise ConfigError(f"{path}: not a desk linkage key ({_KEY_BYTES} bytes expected)")
    return key
