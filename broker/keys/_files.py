"""File handling for the local keystore: private modes, atomic writes, a mutation lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broker.errors import KeyStoreError

__all__ = ["check_private", "locked", "make_private_dir", "read_json", "write_private"]

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_HELD = threading.local()  # the keystores this thread holds the lock of


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and force it to 0700 whatever the umask."""
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(_DIR_MODE)


def check_private(path: Path) -> None:
    """Refuse a keystore file or directory that others can read (like ssh does)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyStoreError(f"keystore file missing: {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        kind = "directory" if stat.S_ISDIR(mode) else "file"
        want = "700" if stat.S_ISDIR(mode) else "600"
        raise KeyStoreError(f"keystore {kind} {path} is accessible by others; chmod {want} it")


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (temp file, fsync, rename), mode 0600 from birth."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyStoreError(f"cannot read keystore file {path}") from exc
    if not isinstance(data, dict):
        raise KeyStoreError(f"keystore file {path} is not in the expected format")
    return data


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Serialise mutations of one keystore across processes (the CLI and a running worker).

    Re-entrant within a thread, so a caller may hold it from a read to its write (as
    sign_directory does) around store methods that take it themselves: a second flock on
    another descriptor of the same file would wait for ever."""
    held: set[str] = _HELD.__dict__.setdefault("paths", set())
    key = os.path.realpath(directory)
    if key in held:
        yield
        return
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        yield
    finally:
        held.discard(key)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
