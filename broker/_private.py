"""Folders and files that are their owner's alone."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["create_private", "make_private_folders", "tighten_file"]


def make_private_folders(folder: Path) -> None:
    """Make ``folder`` and its missing parents, each 0700 whatever the umask; a folder that
    exists already is left as it is (``ACCORD_HOME`` may be shared). ``OSError`` raised."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        made.chmod(0o700)


def create_private(path: Path) -> None:
    """``path`` made 0600 if nothing is there, before SQLite makes it under the umask;
    whatever is there (a file, a device, a folder, a link: ``O_EXCL`` refuses one whatever
    it leads to) is left as it is. ``OSError`` raised."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def tighten_file(name: Path) -> int | None:
    """``name`` made 0600 if it is a file of ours open to others: its mode before, if it was
    changed, else None. A link is never followed. ``OSError`` raised.

    No descriptor of the file is opened unless it needs tightening, and then only an
    ``O_PATH`` one (Linux, with ``/proc``), or none where ``chmod`` can leave links alone:
    closing any other descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's included. A process re-opening a database it already had open (the console,
    while its own indexer wrote) let another process write at the same time, which
    corrupted it ("database disk image is malformed").
    """
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        return None
    if not _open_to_others(st):  # private already, a link, or not ours: nothing to do
        return None
    if getattr(os, "O_PATH", 0) and Path("/proc/self/fd").is_dir():
        # Linux: an O_PATH descriptor, whose close drops no lock; the mode is changed through
        # its /proc/self/fd link, so on the very file checked.
        return _tighten_by_descriptor(name, os.O_PATH)
    if os.chmod in os.supports_follow_symlinks:  # lchmod (BSD, macOS): no descriptor at all
        name.chmod(0o600, follow_symlinks=False)  # a link swapped in: the link's own mode
        return st.st_mode & 0o777
    # Elsewhere a plain descriptor, whose close drops this process's locks on the file: only
    # ever for a file an older Accord left open to others, which is tightened once.
    return _tighten_by_descriptor(name, os.O_RDONLY | os.O_NONBLOCK)


def _tighten_by_descriptor(name: Path, flags: int) -> int | None:
    # O_NONBLOCK: a FIFO planted there meanwhile would otherwise hold the open until a writer
    # came. With O_PATH and O_NOFOLLOW a link is opened as itself (no ELOOP) and fails the
    # check below: the mode is checked and changed on the one file opened.
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):  # a link: left alone; nothing there
            return None
        raise
    try:
        st = os.fstat(fd)
        if not _open_to_others(st):
            return None
        if flags & getattr(os, "O_PATH", 0):
            Path(f"/proc/self/fd/{fd}").chmod(0o600)
        else:
            os.fchmod(fd, 0o600)
        return st.st_mode & 0o777
    finally:
        os.close(fd)


def _open_to_others(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o077) and st.st_uid == os.geteuid()
