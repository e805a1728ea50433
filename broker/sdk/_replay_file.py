"""The replay memory's file (broker.sdk._replay): created private to this account before SQLite
opens it, and its tables, in today's format and as older formats migrate to it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import structlog

from broker._private import tighten_file

__all__ = ["COLUMNS", "FORMAT", "OLD_ROWS", "SCHEMA", "VERSION", "create_private", "migrate"]

log = structlog.get_logger("accord.sdk")

FORMAT = "accord-replay-memory"
# 3: sightings keyed by (event_id, sender), so that admit's look-up by event id is a search of
# the key, not a scan of the table. Format 2 (today's first keying, (sender, event_id), never
# released) has the same columns in the same order, so a process of it still running writes
# rows this format reads; format 1 (event_id alone) is migrated keeping its sightings.
VERSION = 3
_OPENED = """
CREATE TABLE opened (
    sender TEXT NOT NULL,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset INTEGER NOT NULL,
    first_opened REAL NOT NULL,
    PRIMARY KEY (event_id, sender)
) WITHOUT ROWID;
CREATE INDEX opened_by_age ON opened (first_opened);
"""
COLUMNS = "sender, event_id, topic, kafka_partition, kafka_offset, first_opened"
# Formats 1 and 2 rebuild the table; format 1's sightings never kept a sender ("": any).
OLD_ROWS = {
    1: "'', event_id, topic, kafka_partition, kafka_offset, first_opened",
    2: COLUMNS,
}


def migrate(version: int) -> tuple[str, ...]:
    return (
        "ALTER TABLE opened RENAME TO opened_old",
        "DROP INDEX IF EXISTS opened_by_age",
        *filter(str.strip, _OPENED.split(";")),
        f"INSERT INTO opened ({COLUMNS}) SELECT {OLD_ROWS[version]} FROM opened_old",  # noqa: S608  # constants only
        "DROP TABLE opened_old",
        f"PRAGMA user_version = {VERSION}",
    )


SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
{_OPENED}
CREATE TABLE committed (
    topic TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, kafka_partition)
) WITHOUT ROWID;
"""


def create_private(path: Path) -> None:
    """Create ``path`` 0600 (its directory 0700 if missing) before SQLite opens it, so it is
    never readable by others, not even for a moment; SQLite gives its -wal and -shm files the
    same mode. A symbolic link is refused."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    # SQLite keeps the memory in the -wal and its locks in the -shm as much as in the file:
    # any of them planted by another account (first, in a shared folder) could be read, and
    # its rows deleted, defeating the replay check.
    for planted in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        _refuse_foreign(planted)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        _refuse_foreign(path)
        # Not opened and closed here: that would drop the locks of this process's other
        # connections to it (``tighten_file``). Its -wal and -shm (and a -journal) too: an
        # earlier SDK left them as open as the file, and they hold its rows as much.
        names = [path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))]
        if tightened := [str(name) for name in names if tighten_file(name) is not None]:
            log.warning("replay_memory_made_private", paths=tightened)
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _refuse_foreign(path: Path) -> None:
    """``OSError`` if ``path`` is a link, or a file of another account (fchmod refused it
    with EPERM before the memory took no descriptor of an existing file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):  # as O_NOFOLLOW refuses one
        raise OSError(errno.ELOOP, "a symbolic link", str(path))
    if st.st_uid != os.geteuid():
        raise OSError(errno.EPERM, "it belongs to another account", str(path))
