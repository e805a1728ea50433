"""Folders and files that are their owner's alone."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal

__all__ = ["make_private_folders", "tighten_file"]


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


def tighten_file(path: Path) -> Literal["absent", "private", "foreign"] | int:
    """``path`` made 0600 if it is a regular file of this account's that others may read or
    write: the mode it had. ``"foreign"``: another account's file that others may read or
    write (one planted where a database goes, in a folder another can write to): the caller
    refuses it, as writing there would hand the rows to whoever owns it. ``"absent"``:
    nothing there, or a link (never followed: O_NOFOLLOW). ``"private"``: nothing to do (a
    device or FIFO too: never made 0600, which as root would change ``/dev/null``). The mode
    is checked and changed on the one file opened, not looked up by name and then changed by
    name, which follows a link put there in between. ``OSError`` raised otherwise."""
    try:
        # O_NONBLOCK: a FIFO planted there would otherwise hold the open until a writer came.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            return "absent"
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o077:
            return "private"
        if st.st_uid != os.geteuid():
            return "foreign"
        os.fchmod(fd, 0o600)
        return st.st_mode & 0o777
    finally:
        os.close(fd)
