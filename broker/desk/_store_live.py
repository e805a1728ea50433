"""A desk's PostgreSQL connection that outlives a restart of the server or a cut network.

The desk keeps one connection for its pages and its ingest (one event loop). When PostgreSQL
restarts (an upgrade, a fail-over), that connection is closed for good: without this, every
page failed with *Something went wrong* long after the server was back, and the next
delivery ended the desk with a traceback. Now a statement on a connection the server closed
raises :class:`StoreUnavailable` (pages answer 503 saying the database cannot be reached; the
ingest keeps the batch and tries it again), and a later statement connects again.

The driver is synchronous, so a statement or a connection attempt that waits blocks every
page. A network cut without a reset would otherwise wait for ever: TCP keepalives and a TCP
user timeout bound a statement to about ``CUT_AFTER_S`` (libpq's own settings, given by the
caller's ``connect``), and connecting again is tried at most once every ``RETRY_AFTER_S``
with a short timeout, the pages answering 503 at once in between.

Never inside a transaction: a connection lost mid-transaction is not replaced there (whether
it began with ``transaction()`` or a plain ``BEGIN``), or the transaction's later statements
would run, each committed alone, on the new connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from broker.errors import ConfigError, StoreUnavailable

__all__ = ["CUT_AFTER_S", "RETRY_AFTER_S", "LiveConnection"]

CUT_AFTER_S = 15  # a statement on a silently cut connection fails after about this long
RETRY_AFTER_S = 5.0  # after a failed attempt to connect again, pages answer 503 at once
RECONNECT_WITHIN_S = 2  # a connection attempt, after the first, waits at most this long

Connect = Callable[[int], psycopg.Connection[Any]]  # given the connection timeout in seconds


class LiveConnection:
    """The part of a psycopg connection the store uses: ``execute``, ``transaction``,
    ``close``; a connection the server closed is made again by ``connect`` when next used."""

    def __init__(
        self,
        connect: Connect,
        *,
        where: str,
        connect_within: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._where = where
        self._clock = clock
        self._conn = connect(connect_within)  # at start: a ConfigError, one line, as before
        self._in_transaction = False
        self._failed_at: float | None = None
        self._why: str | None = None

    def _live(self) -> psycopg.Connection[Any]:
        if not self._conn.closed:
            return self._conn
        if self._in_transaction:
            raise StoreUnavailable(self._where, self._why)
        if self._failed_at is not None and self._clock() - self._failed_at < RETRY_AFTER_S:
            raise StoreUnavailable(self._where, self._why)
        try:
            self._conn = self._connect(RECONNECT_WITHIN_S)
        except ConfigError as exc:
            self._failed_at = self._clock()
            self._why = str(exc)  # our own words (why_not_connected), never the driver's
            raise StoreUnavailable(self._where, self._why) from None
        self._failed_at = self._why = None
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        # A plain BEGIN (a snapshot's reads, a migration) is a transaction too.
        word = sql.lstrip()[:8].upper()
        ends = word.startswith(("COMMIT", "ROLLBACK"))
        if ends and self._in_transaction and self._conn.closed:
            # Its transaction went with the connection: ended, so the next use may connect
            # again (a COMMIT's writes were never committed; the caller is told).
            self._in_transaction = False
            raise StoreUnavailable(self._where, self._why)
        conn = self._live()
        with self._lost(conn):
            cursor = conn.execute(sql, params)
        if word.startswith("BEGIN"):
            self._in_transaction = True
        elif ends:
            self._in_transaction = False
        return cursor

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._live()
        with self._lost(conn), conn.transaction():
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _lost(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError:
            if conn.closed:  # the server went away; any other error is the statement's
                # A caller inside a transaction is refused until it ends it (``transaction``
                # unwinding; a plain BEGIN's ROLLBACK or COMMIT, above); the next use after
                # that connects again.
                raise StoreUnavailable(self._where) from None
            raise
