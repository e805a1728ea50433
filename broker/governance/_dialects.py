"""The two databases the audit index runs on, and ``open_store``, which picks one from a URL:
``sqlite:///PATH`` (or none: ``<home>/audit.db``) or ``postgresql://…``. They share the SQL
(``_sql``) and differ only in how they connect, open a transaction and take a lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog

from broker._private import create_private, make_private_folders, tighten_file
from broker.errors import AuditError, UsageError
from broker.governance._index_url import (
    GIVE_A_FILE,
    describe_url,
    not_a_database,
    sqlite_file,
    url_scheme,
)
from broker.governance._sql import SqlAuditStore
from broker.governance._store import AuditStore

__all__ = ["PostgresAuditStore", "SqliteAuditStore", "describe_url", "open_store", "sqlite_file"]

log = structlog.get_logger("accord.audit")


# What ``mode=ro`` gets (extended codes) where only storage this account cannot write to is
# in the way of reading the file as it is: the WAL database's ``-shm`` cannot be set up
# (SQLITE_READONLY_CANTINIT), a file beside it cannot be made (SQLITE_READONLY_DIRECTORY),
# or opened (SQLITE_CANTOPEN). Never SQLITE_READONLY_ROLLBACK (a hot ``-journal``: the file
# holds a write never finished) or SQLITE_READONLY_RECOVERY (a ``-wal`` to recover), which
# ``immutable=1`` would read past; nor a busy or locked database.
_UNWRITABLE_STORAGE = frozenset({1288, 1544, 14})
_SQLITE_READONLY_ROLLBACK = 776


def _shell_word(name: str) -> str:
    """``name`` as one word a POSIX shell passes on as it is: quoted (a space, a ``'``), and
    after ``./`` (a name starting with ``-`` would be read as an option)."""
    return shlex.quote(f"./{name}")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """``path`` opened so SQLite itself refuses every write (a copy kept as evidence stays as
    it was: its bytes and its mode).

    ``mode=ro`` first, not ``immutable``: a copy's ``-wal`` holds committed rows that must be
    read. But a WAL database read with ``mode=ro`` needs its ``-shm`` (and ``-wal``) created
    beside it, which storage this account cannot write to (a write-protected folder, a
    read-only mount: the usual way evidence is kept) refuses. Then, with no rows in a ``-wal``
    or ``-journal`` (everything is in the file), ``immutable=1`` reads the file alone,
    creating nothing; with rows in a ``-wal``, which only ``mode=ro`` would read, or in a
    ``-journal`` (a write never finished, half in the file), it is refused in one line."""
    # The file itself, once: a copy named through a symlink keeps its -wal and -journal beside
    # the file, not beside the link (SQLite looks there), so every check and message uses it.
    path = path.resolve()
    where = quote(str(path))
    conn = sqlite3.connect(f"file:{where}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)  # fmt: skip
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens it: may refuse
    except sqlite3.OperationalError as exc:
        conn.close()
        code = getattr(exc, "sqlite_errorcode", 0)
        journal = path.with_name(f"{path.name}-journal")
        if code == _SQLITE_READONLY_ROLLBACK or (
            code in _UNWRITABLE_STORAGE and journal.is_file() and journal.stat().st_size > 0
        ):
            raise AuditError(
                f"cannot open the audit index at {path} read-only: {journal.name} beside it "
                "holds a write never finished (read without it, the file shows that write half "
                "done; only a writer rolls it back); copy the file and its -journal to a folder "
                "you can write to, keeping their names (SQLite finds the journal by its name), "
                "roll the write back by running, in that folder: "
                f'sqlite3 {_shell_word(path.name)} "PRAGMA quick_check"; then name that copy '
                "with --db"
            ) from None
        if code not in _UNWRITABLE_STORAGE:
            raise
    else:
        return conn
    wal = path.with_name(f"{path.name}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise AuditError(
            f"cannot open the audit index at {path} read-only: its folder cannot be written to "
            f"(SQLite creates {path.name}-shm to read a WAL database) and {wal.name} holds rows "
            "that only that way reads; copy the file and its -wal to a folder you can write "
            "to, and name that copy with --db"
        )
    return sqlite3.connect(f"file:{where}?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)  # fmt: skip


class SqliteAuditStore(SqlAuditStore):
    """The embedded default: one file, stdlib ``sqlite3``."""

    backend = "sqlite"

    def __init__(self, path: Path, *, create: bool = True, read_only: bool = False) -> None:
        self.path = path
        try:
            # Inside the try: stat() raises PermissionError on a link the kernel refuses.
            if (read_only or not create) and not _is_file(path):
                raise AuditError(f"no audit index at {path}; run 'accord audit index' first")
            if read_only:
                conn = _connect_read_only(path)
            else:
                _make_private(path, create=create)
                # Autocommit mode: transactions are opened explicitly, exactly where they belong.
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            super().__init__(
                conn, create=create, where=str(path), read_only=read_only,
                reopen=f"sqlite://{path.resolve()}",
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            # sqlite3's base class alone is a damaged file or not a database at all.
            damaged = type(exc) is sqlite3.DatabaseError
            why = f"damaged or not a database ({exc}); {REBUILD}" if damaged else type(exc).__name__
            raise AuditError(f"cannot open the audit index at {path}: {why}") from exc

    def _has_index(self) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        return bool(self._q(sql))

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return super()._q(sql, params)
        except sqlite3.DatabaseError as exc:
            # The base class alone is a damaged page met mid-command (a disk fault, a copy cut
            # short); its subclasses (locks, constraints, misuse) are not this.
            if type(exc) is not sqlite3.DatabaseError:
                raise
            damaged = f"the audit index at {self.path} is damaged ({exc})"
            raise AuditError(f"{damaged}; {REBUILD}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        # Deferred: in WAL mode the first read fixes the snapshot, and writers carry on.
        self._conn.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            self._conn.execute("ROLLBACK")


# Said wherever a damaged SQLite index is met: the topic is the record, the index a copy.
REBUILD = (
    "an audit index is rebuilt from the audit topic with 'accord audit index --once' into an "
    "empty file (docs/governance.md, Databases)"
)


def _is_file(path: Path) -> bool:
    """``path`` leads to a regular file. Not ``Path.is_file``: from Python 3.13 it is False on
    every ``OSError``, so a link the kernel refuses would read as no index at all. Nothing
    there, a folder on the way that is not one, or a loop of links: no file."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise


def _make_private(path: Path, *, create: bool) -> None:
    """The index readable by its owner alone: it holds who looked up which child (subject
    keys, overrides). ``OSError`` raised.

    Folders made here are 0700; one that exists is left as it is (``ACCORD_HOME`` may be
    shared). A new file is made 0600 before SQLite opens it, and SQLite makes its ``-wal``
    and ``-shm`` files with the database's mode. An index an earlier Accord left readable by
    others (it made them 0644) is tightened, with its ``-wal`` and ``-shm``, when it is ours.
    Named through a symlink: the file it leads to, and the ``-wal`` and ``-shm`` beside that
    file, where SQLite keeps them (never beside the link); a ``-wal`` or ``-shm`` that is
    itself a link is left alone. A link the kernel refuses to follow (another user's, in a
    sticky folder, where symlinks are protected) is ``PermissionError``. Another account's
    file or link in a sticky world-writable folder is refused, ``AuditError``
    (``_refuse_planted``).
    """
    if create:
        make_private_folders(path.parent)
        create_private(path)
    _refuse_planted(path)
    # Followed once by the kernel (stat) before resolve(), which reads a link with readlink (as
    # SQLite does) where nothing checks it: where links are protected (Linux's
    # fs.protected_symlinks), one another user made in a sticky world-writable folder is
    # refused here, PermissionError raised, before anything is made or tightened through it.
    with contextlib.suppress(FileNotFoundError):  # nothing there, or a link to no file yet
        path.stat()
    # Resolved only after the create above, which never follows a link.
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # not expected: a loop already failed at stat(), ELOOP
        real = path
    if create and real != path:
        # A link to no file yet: SQLite would make the file through it with the umask's mode.
        create_private(real)
    files = (real, Path(f"{real}-wal"), Path(f"{real}-shm"))
    for name in files:
        if name != path:
            _refuse_planted(name)
    for name in files:
        _tighten(name)


def _refuse_planted(path: Path) -> None:
    """``AuditError`` if ``path`` (a file or a link, not followed) is in a sticky
    world-writable folder (``/tmp``) and belongs to neither this account nor the folder's
    owner: Accord would write the index into a file another can read, or follow a link
    another can point anywhere. The rule of Linux's ``fs.protected_regular`` and
    ``fs.protected_symlinks``, kept whatever those are set to. In a sticky folder only an
    entry's owner (or the folder's) can replace it, so one found ours here stays ours."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    folder = path.parent.stat()
    shared = stat.S_ISVTX | stat.S_IWOTH
    if folder.st_mode & shared == shared and st.st_uid not in (os.geteuid(), folder.st_uid):
        raise AuditError(
            f"cannot open the audit index at {path}: it belongs to another account in a "
            "shared folder"
        )


def _tighten(name: Path) -> None:
    """``name`` made 0600 if it is a file of ours open to others, without dropping the locks
    this process's SQLite connections hold on it (``tighten_file``)."""
    if (was := tighten_file(name)) is not None:
        log.warning("audit_index_made_private", file=name.name, was=oct(was))


class PostgresAuditStore(SqlAuditStore):
    """Production: PostgreSQL through psycopg 3."""

    backend = "postgresql"

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False) -> None:
        # Only deployments on PostgreSQL load the driver (``_sql_live`` imports it).
        from broker._pg_live import NotConnected  # noqa: PLC0415
        from broker.governance._sql_live import LiveIndexConnection, connector  # noqa: PLC0415

        where = describe_url(url)
        # A copy kept as evidence: every transaction of each session read-only (``connector``).
        connect = connector(url, read_only=read_only)
        why: str | None = None
        try:
            conn = connect(10)
        except NotConnected as exc:  # our words already, with no driver error behind
            why = exc.why
        if why is not None:
            raise AuditError(f"cannot connect to the audit database {where}: {why}")
        # Connected again when PostgreSQL has ended the session (a restart): ``_sql_live``.
        live = LiveIndexConnection(connect, conn, where=where)
        super().__init__(live, create=create, where=where, read_only=read_only, reopen=where)

    def _has_index(self) -> bool:
        return self._q("SELECT to_regclass('schema_version')")[0][0] is not None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _params(self, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        # None, not (): psycopg then reads no placeholders, so a LIKE pattern's '%' is itself.
        return params or None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        # READ COMMITTED, the default, takes a new snapshot per statement.
        with self._conn.transaction():
            self._q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _lock_migrations(self) -> None:
        self._q("SELECT pg_advisory_xact_lock(?)", (0x4163636F7264,))  # 'Accord'

    def _lock_index(self) -> None:
        # READ COMMITTED: once the lock is held, the offsets read next are the latest.
        self._q("SELECT pg_advisory_xact_lock(?)", (0x4163636F7265,))  # 'Accord' + 1


def open_store(
    url: str | None, *, home: Path, create: bool = True, read_only: bool = False
) -> AuditStore:
    """``sqlite:///PATH``, ``postgresql://…``, or None for ``<home>/audit.db``.

    ``create=False`` for commands that only read: an index that is not there is an error,
    never an empty one made on the spot. ``read_only`` (a copy kept as evidence): the
    database refuses every write, and nothing is migrated or tightened; an index whose schema
    is older than this Accord's is refused (``AuditError``), not upgraded.
    """
    if url is None or not url.strip():
        return SqliteAuditStore(home / "audit.db", create=create, read_only=read_only)
    url = url.strip()
    scheme = url_scheme(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresAuditStore(url, create=create, read_only=read_only)
    if scheme == "sqlite":
        path = sqlite_file(url, home=home)
        if path is None:
            raise UsageError(f"--db: {GIVE_A_FILE}")
        return SqliteAuditStore(path, create=create, read_only=read_only)
    # Never the text itself: a libpq key=value string given here holds the password.
    raise UsageError(f"--db: {not_a_database(url)}")
