"""A desk's SQLite store is its party's alone: the file and its ``-wal``, ``-shm`` and
``-journal`` hold the records shared with the party (the ``-wal`` the latest of them, as
much as the file), and no other account on the machine may read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

from broker._private import create_private, make_private_folders, tighten_file
from broker.errors import ConfigError

__all__ = ["make_store_private"]

log = structlog.get_logger("accord.desk")

#: The files SQLite keeps beside a database, with the database's mode when it makes them.
SIDECARS = ("-wal", "-shm", "-journal")


def make_store_private(path: Path, *, own_folder: bool) -> None:
    """Before SQLite opens ``path``: the file made 0600 if missing (SQLite then gives its
    ``-wal``, ``-shm`` and ``-journal`` that mode), and the file and those three tightened to
    0600 where they are open to others (an earlier Accord left them 0644); the folder made
    0700 if missing, and tightened to 0700 if it is the desk's own (``own_folder``:
    ``<home>/desk``), while a folder the URL names that exists is left as it is (it may be
    shared, as ``ACCORD_HOME`` may). One warning names what was tightened (paths only).

    ``OSError`` when the file cannot be made (the caller's "cannot open"); ``ConfigError``
    when what is open to others cannot be tightened, as the keystore refuses such a file.
    Links, devices and folders are never made or changed through their name."""
    make_private_folders(path.parent)
    create_private(path)
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a loop: SQLite's own open says so
        real = path
    if real != path:
        # A link to no file yet: SQLite would make the file through it with the umask's mode.
        create_private(real)
    tightened: list[str] = []
    if own_folder and _open_to_others(path.parent, path.parent.stat()):
        _tighten(path.parent, 0o700, "folder")
        tightened.append(str(path.parent))
    for name in (real, *(Path(f"{real}{suffix}") for suffix in SIDECARS)):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and _open_to_others(name, st):
            _tighten(name, 0o600, "file")
            tightened.append(str(name))
    if tightened:
        log.warning("desk_store_made_private", paths=tightened)


def _open_to_others(name: Path, st: os.stat_result) -> bool:
    if not st.st_mode & 0o077:
        return False
    if st.st_uid != os.geteuid():
        # Only its owner may change its mode: said, never used as it is.
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
        raise _refused(name, kind, "it belongs to another account")
    return True


def _tighten(name: Path, mode: int, kind: str) -> None:
    try:
        if kind == "folder":
            name.chmod(mode)
        else:
            # Through an O_PATH descriptor where there is one: closing any other descriptor
            # of the file would drop this process's SQLite locks on it (``tighten_file``).
            tighten_file(name)
    except OSError as exc:
        raise _refused(name, kind, exc.strerror or type(exc).__name__) from None


def _refused(name: Path, kind: str, why: str) -> ConfigError:
    want = "700" if kind == "folder" else "600"
    return ConfigError(
        f"desk store {kind} {name} is accessible by others and cannot be made private "
        f"({why}); chmod {want} it"
    )
