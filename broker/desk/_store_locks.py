"""How the desk store keeps two writers apart: desk processes making or migrating the schema at
once, and two decisions settling the same flag at once (two desk processes on one store, or
any caller that did not serialise them).

A decision's transaction waits for another writer at most :data:`WAIT_SECONDS` (SQLite's
busy timeout, PostgreSQL's ``lock_timeout``): the driver's calls are synchronous, on the
desk's one event loop, so while one waits no page is served; a writer that holds on longer
(a desk process paused or cut off mid-decision) gets :class:`StoreBusy`, nothing recorded.
A caller nobody waits for (the desk's background retry) asks for a short wait
(``wait_seconds``): busy soon, tried again later, and the pages go on being served.

A desk's start waits for another process's hold on a table at most as long
(:func:`start_waits`), then fails: PostgreSQL's ``CREATE INDEX IF NOT EXISTS`` takes its
table's lock even when the index is there, so a desk process paused mid-decision would
otherwise hold every later start for ever, and every live desk's decisions would queue behind
the waiting start.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from broker.errors import RecordedAlready, StoreBusy

__all__ = [
    "PUBLISHED_ONCE_INDEX",
    "WAIT_SECONDS",
    "busy",
    "one_transaction",
    "others_kept_out",
    "published_twice",
    "recorded_already",
    "schema_lock",
    "settled_among",
    "start_waits",
]

_SCHEMA_LOCK = 0x4163636F7264 + 16  # 'Accord', apart from the audit index's two
#: As long as a page waits for Kafka (SEND_TIMEOUT_SECONDS' default): every page stalls
#: meanwhile, and a writer that takes longer is not about to finish.
WAIT_SECONDS = 5
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout expiring
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
#: The unique index that keeps one decision per published event (made by _store_schema).
PUBLISHED_ONCE_INDEX = "desk_decisions_published_once"


def busy(exc: BaseException) -> bool:
    """Whether ``exc`` is another writer's hold outlasting the wait (SQLite or psycopg)."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE  # psycopg, loaded or not


Query = Callable[..., list[tuple[Any, ...]]]


@contextlib.contextmanager
def schema_lock(q: Query, *, postgresql: bool) -> Iterator[None]:
    """One desk process at a time makes or migrates the schema: on PostgreSQL two identical
    CREATE ... IF NOT EXISTS at once can both pass the check, and one fails (two desk
    processes started together). SQLite's own locks serialise them."""
    if not postgresql:
        yield
        return
    q("SELECT pg_advisory_lock(?)", (_SCHEMA_LOCK,))
    try:
        yield
    finally:
        q("SELECT pg_advisory_unlock(?)", (_SCHEMA_LOCK,))


@contextlib.contextmanager
def start_waits(q: Query, *, postgresql: bool) -> Iterator[None]:
    """Another process's hold on a table is waited for at most :data:`WAIT_SECONDS` by the
    statements inside (a desk's start, after :func:`schema_lock`: another desk's start is
    waited for as long as it takes), then :func:`busy`. SQLite's busy timeout is that
    already."""
    if not postgresql:
        yield
        return
    q(f"SET lock_timeout = '{WAIT_SECONDS}s'")
    try:
        yield
    finally:
        # The connection serves the desk from then on: each of its transactions sets its own.
        with contextlib.suppress(Exception):
            q("RESET lock_timeout")


@contextlib.contextmanager
def others_kept_out(q: Query, *, postgresql: bool) -> Iterator[None]:
    """The statements inside as one transaction that no other process writes decisions
    during: an older desk process recording a copy between the removal of copies and the
    unique index would make the index fail, and this desk not start. SQLite's BEGIN
    IMMEDIATE takes the database's write lock; on PostgreSQL the table lock keeps out
    other writers until the commit (the index build alone would wait for one and then fail
    on its copy), read committed whatever the server's default. Waiting for either is
    bounded by :func:`start_waits`."""
    try:
        if postgresql:
            q("BEGIN ISOLATION LEVEL READ COMMITTED")
            # Inside the try: a lock not had in time must not leave the transaction open.
            q("LOCK TABLE desk_decisions IN SHARE ROW EXCLUSIVE MODE")
        else:
            q("BEGIN IMMEDIATE")
        yield
        q("COMMIT")
    except BaseException:
        # A ROLLBACK that fails too must not hide why the migration failed.
        with contextlib.suppress(Exception):
            q("ROLLBACK")
        raise


@contextlib.contextmanager
def one_transaction(
    conn: Any, *, postgresql: bool, wait_seconds: float | None = None
) -> Iterator[None]:
    """The statements inside as one transaction on an autocommit connection: all or none.
    SQLite's BEGIN IMMEDIATE takes the database's write lock first, so what is read inside
    is what the writes land on: another process's write waits (or fails) until this ends.
    Waiting for another writer longer than ``wait_seconds`` (None: the store's own,
    :data:`WAIT_SECONDS`; 0: not at all) raises :class:`StoreBusy`, the transaction rolled
    back."""
    try:
        if postgresql:
            wait_ms = round(1000 * (WAIT_SECONDS if wait_seconds is None else wait_seconds))
            with conn.transaction():
                # At least 1 ms: PostgreSQL reads a lock_timeout of 0 as "wait for ever".
                conn.execute(f"SET LOCAL lock_timeout = '{max(wait_ms, 1)}ms'")
                yield
            return
        with _sqlite_wait(conn, wait_seconds):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                # Inside the try: a COMMIT that fails (a reader's lock outlasting the busy
                # timeout without WAL) would leave the one shared connection in this
                # transaction for good, every later BEGIN refused.
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # A ROLLBACK that fails too must not hide why the transaction ended.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
    except Exception as exc:
        if busy(exc):
            raise StoreBusy from None
        raise


@contextlib.contextmanager
def _sqlite_wait(conn: Any, wait_seconds: float | None) -> Iterator[None]:
    """SQLite's busy timeout as ``wait_seconds`` for the transaction, the connection's own
    again after it (the one shared connection: the next caller waits as usual)."""
    if wait_seconds is None:
        yield
        return
    [(usual,)] = conn.execute("PRAGMA busy_timeout").fetchall()
    conn.execute(f"PRAGMA busy_timeout = {round(1000 * wait_seconds)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(usual)}")


def settled_among(q: Query, flag_ids: Sequence[str], *, postgresql: bool) -> tuple[str, ...]:
    """Which of ``flag_ids`` a decision settles already (as ``DeskStore.flags`` counts it),
    read inside :func:`one_transaction`. On PostgreSQL the flags' rows are locked first: a
    second transaction settling one waits here until the first commits, then reads its
    decision (each statement reads what was committed before it)."""
    if postgresql:
        for flag_id in sorted(flag_ids):  # one order for all: no two wait on each other
            q("SELECT flag_id FROM desk_flags WHERE flag_id = ? FOR UPDATE", (flag_id,))
    return tuple(
        flag_id
        for flag_id in flag_ids
        if q(
            "SELECT 1 FROM desk_decision_flags WHERE flag_id = ? "
            "UNION ALL SELECT 1 FROM desk_decisions WHERE flag_id = ?",
            (flag_id, flag_id),
        )
    )


def recorded_already(q: Query, published_event: str | None) -> None:
    """Raise :class:`RecordedAlready` if a decision names ``published_event`` already, read inside
    :func:`one_transaction` (on SQLite, under its write lock; on PostgreSQL the unique index
    ``desk_decisions_published_once`` refuses the second of two at once: see
    :func:`published_twice`)."""
    if published_event is not None and q(
        "SELECT 1 FROM desk_decisions WHERE published_event = ?", (published_event,)
    ):
        raise RecordedAlready(published_event)


def published_twice(exc: BaseException) -> bool:
    """Whether ``exc`` is the index ``desk_decisions_published_once`` refusing a second
    decision for one published event (SQLite or psycopg, loaded or not); any other unique
    constraint refusing a row (a decision id used twice) is a fault, not "recorded already"."""
    if isinstance(exc, sqlite3.IntegrityError):
        # SQLite names a unique index's columns, not the index: this is the only unique
        # constraint on published_event.
        return str(exc) == "UNIQUE constraint failed: desk_decisions.published_event"
    diag = getattr(exc, "diag", None)
    return (
        getattr(exc, "sqlstate", None) == "23505"
        and getattr(diag, "constraint_name", None) == PUBLISHED_ONCE_INDEX
    )
