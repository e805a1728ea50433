"""A desk's PostgreSQL connection that outlives a restart of the server.

The desk keeps one connection for its pages and its ingest (one event loop). When PostgreSQL
restarts (an upgrade, a fail-over), that connection is closed for good: without this, every
page failed with *Something went wrong* long after the server was back, and the next
delivery ended the desk with a traceback. Now a statement on a connection the server closed
raises :class:`StoreUnavailable` (pages answer 503 saying the database cannot be reached; the
ingest keeps the batch and tries it again), and the next statement connects again.

Never inside a transaction: a connection lost mid-transaction is not replaced there, or the
transaction's later statements would run, each committed alone, on the new connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from broker.errors import ConfigError, StoreUnavailable

__all__ = ["LiveConnection"]


class LiveConnection:
    """The part of a psycopg connection the store uses: ``execute``, ``transaction``,
    ``close``; a connection the server closed is made again by ``connect`` when next used."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], *, where: str) -> None:
        self._connect = connect
        self._where = where
        self._conn = connect()
        self._in_transaction = False

    def _live(self) -> psycopg.Connection[Any]:
        if self._conn.closed:
            if self._in_transaction:
                raise StoreUnavailable(self._where)
            try:
                self._conn = self._connect()
            except ConfigError:
                raise StoreUnavailable(self._where) from None
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        conn = self._live()
        with self._lost(conn):
            return conn.execute(sql, params)

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
                raise StoreUnavailable(self._where) from None
            raise
