"""Opening a desk's store: SQLite at ``<home>/desk/<party>.db`` by default, or the URL given
(``sqlite:///PATH``, ``postgresql://…``); the store is the party's from then on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from broker.desk import _store_locks
from broker.desk._store import DeskStore
from broker.desk._store_private import make_store_private
from broker.desk._store_schema import held_up_fails
from broker.errors import ConfigError, UsageError
from broker.governance import not_a_database, sqlite_file, url_scheme, why_not_connected

__all__ = ["open_desk_store"]


def open_desk_store(url: str | None, *, home: Path, party: str) -> DeskStore:
    """``sqlite:///PATH``, ``postgresql://…``, or None for ``<home>/desk/<party>.db``; the
    store is ``party``'s from then on (``DeskStore.claim``)."""
    return _open(url, home=home, party=party)


def _open(url: str | None, *, home: Path, party: str) -> DeskStore:
    if url is None or not url.strip():
        return _sqlite(home / "desk" / f"{party}.db", party=party, own_folder=True)
    url = url.strip()
    scheme = url_scheme(url)
    if scheme in ("postgresql", "postgres"):
        from broker.desk._store_live import LiveConnection  # noqa: PLC0415  # loads the driver

        where = "the desk's PostgreSQL database"
        conn = LiveConnection(lambda within: _connect(url, within), where=where)
        store = DeskStore(conn, placeholder="%s", where=where)
        store.claim(party)
        return store
    if scheme == "sqlite":
        # Read as the audit index's URL is: sqlite:/// and sqlite://// name the root folder,
        # which sqlite3 would fail to open with a traceback, not a file.
        path = sqlite_file(url, home=home)
        if path is None:
            raise UsageError("desk store: give a file, e.g. sqlite:///var/lib/accord/desk.db")
        return _sqlite(path, party=party)
    # Never the text itself: a libpq key=value string given here holds the password.
    raise UsageError(f"desk store: {not_a_database(url)}")


def _connect(url: str, within: int) -> Any:
    """A new connection to the desk's PostgreSQL database (at start, and after the server
    closed the last one: ``_store_live``), given up after ``within`` seconds
    (``NotConnected``, its ``why`` the line a desk that cannot start says)."""
    # Only deployments on PostgreSQL load the driver (``_pg_live`` imports it).
    from broker._pg_live import connector  # noqa: PLC0415
    from broker.desk._store_live import CUT_AFTER_S  # noqa: PLC0415

    def why(exc: BaseException) -> str:
        # Never the driver's text: it may quote the URL.
        return f"cannot connect to the desk's PostgreSQL database: {why_not_connected(exc)}"

    connect = connector(url, cut_after_s=CUT_AFTER_S, reason=why, setup=_read_committed)
    return connect(within)


def _read_committed(conn: Any) -> None:
    import psycopg  # noqa: PLC0415  # loaded already: the connection is psycopg's

    # Whatever the server's default: a decision's check of its flags, after FOR UPDATE
    # waited for another's, must read what that one committed (repeatable read would
    # read its snapshot from before the wait, and record both; serializable would fail).
    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


def _sqlite(path: Path, *, party: str | None = None, own_folder: bool = False) -> DeskStore:
    """The store in the file at ``path``, ``party``'s if given (claimed), its files (and
    ``own_folder``, ``<home>/desk``) private before SQLite opens them (``_store_private``).
    A folder, a device, a file in ``/proc``: one line (``ConfigError``), not sqlite3's
    traceback; held_up_fails' and claim's own refusals are left as they are."""
    try:
        make_store_private(path, own_folder=own_folder)
        # Autocommit, one connection shared by the ingest task and the pages (one event loop).
        # A busy database is waited for WAIT_SECONDS (store_locks), not left to the driver's
        # default: the wait blocks the event loop, so every page waits with it.
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=_store_locks.WAIT_SECONDS
        )
    except (sqlite3.Error, OSError) as exc:
        raise _cannot_open(path, exc) from None
    try:
        with held_up_fails(str(path)):
            _wal(conn)
        store = DeskStore(conn, where=str(path))  # the first writes (the tables) may refuse
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise _cannot_open(path, exc) from None
    except BaseException:
        conn.close()
        raise
    try:
        if party is not None:
            store.claim(party)
    except sqlite3.Error as exc:
        store.close()
        raise _cannot_open(path, exc) from None
    return store


def _cannot_open(path: Path, exc: BaseException) -> ConfigError:
    return ConfigError(f"desk store: cannot open {path}: {type(exc).__name__}")


def _wal(conn: sqlite3.Connection) -> None:
    """WAL mode, asked again while SQLite says the file is busy, for up to the store's wait:
    while another connection writes to a file not yet in WAL (another desk process started
    on the same fresh file, making the tables) SQLite refuses the change at once, without
    its busy wait, and one of two desk processes started together ended in a traceback.

    Against a reader SQLite does wait, the connection's whole busy timeout: each ask waits
    only what is left of the store's wait, or one asked just before the end took it twice."""
    whole = round(1000 * _store_locks.WAIT_SECONDS)
    deadline = time.monotonic() + _store_locks.WAIT_SECONDS
    try:
        while True:
            left = max(0, round(1000 * (deadline - time.monotonic())))
            conn.execute(f"PRAGMA busy_timeout = {left}")
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if not _store_locks.busy(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)  # the other's write lasts milliseconds
            else:
                return
    finally:
        conn.execute(f"PRAGMA busy_timeout = {whole}")  # the store's wait, as connected
