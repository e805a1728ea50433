"""The audit index's PostgreSQL connection, made again after the server ended it.

The store keeps one connection. When PostgreSQL restarts (an upgrade, a fail-over) the server
ends it, and before this every later call failed on it for good: the console answered
``/readyz`` 503 until someone restarted it, and ``accord audit index --follow`` ended with the
driver's traceback. Now a statement on a connection the server ended raises
:class:`IndexUnavailable` (one line, our words, never the driver's: its text can quote the
statement), and a later statement connects again.

A read outside a transaction is tried once more on a fresh connection (nothing of it can have
been applied twice). Nothing else is: a connection lost inside a transaction is not replaced
there, or the transaction's later statements would each commit alone on the new one; the
server rolled back what it held, and the caller is told. Connecting again is tried at most
once every ``RETRY_AFTER_S`` after a failed attempt, with a short timeout, and refused at
once in between: the driver is synchronous, and the console's probes and pages share its
event loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from broker.errors import IndexUnavailable
from broker.governance._pg_connect import why_not_connected

__all__ = ["RECONNECT_WITHIN_S", "RETRY_AFTER_S", "LiveIndexConnection", "connector"]

RETRY_AFTER_S = 5.0  # after a failed attempt to connect again, calls fail at once this long
RECONNECT_WITHIN_S = 2  # an attempt to connect again waits at most this long (seconds)

# Given the connection timeout in seconds; raises IndexUnavailable (its ``why`` in our words).
Connect = Callable[[int], psycopg.Connection[Any]]

# The driver's failures that can mean the connection itself is gone (AdminShutdown, raised
# when the server ends the session, is an OperationalError); which one it was is decided by
# the connection's state, never by the message.
_DRIVER_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class LiveIndexConnection:
    """What the store uses of a psycopg connection (``execute``, ``transaction``, ``close``);
    one the server closed is made again by ``connect`` when next used."""

    def __init__(
        self,
        connect: Connect,
        conn: psycopg.Connection[Any],
        *,
        where: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._conn = conn
        self._where = where
        self._clock = clock
        self._in_transaction = False
        self._failed_at: float | None = None
        self._why: str | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The connection now in use (tests end its session from another one)."""
        return self._conn

    def _gone(self, conn: psycopg.Connection[Any]) -> bool:
        return bool(conn.closed or conn.broken)

    def _unavailable(self) -> IndexUnavailable:
        return IndexUnavailable(self._where, self._why)

    def _live(self) -> psycopg.Connection[Any]:
        if not self._gone(self._conn):
            return self._conn
        if self._in_transaction:
            raise self._unavailable()
        if self._failed_at is not None and self._clock() - self._failed_at < RETRY_AFTER_S:
            raise self._unavailable()  # no attempt per call while the server is away
        with contextlib.suppress(psycopg.Error):
            self._conn.close()  # its socket, if libpq still holds one
        failed = False
        try:
            self._conn = self._connect(RECONNECT_WITHIN_S)
        except IndexUnavailable as exc:
            failed, self._why = True, exc.why
        if failed:  # raised out of the except block: one error, not a chain of two
            self._failed_at = self._clock()
            raise self._unavailable()
        self._failed_at = self._why = None
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        again = not self._in_transaction and sql.lstrip()[:6].upper() == "SELECT"
        for attempt in range(2 if again else 1):
            conn = self._live()
            lost = False
            try:
                return conn.execute(sql, params)
            except _DRIVER_LOST:
                if not self._gone(conn):
                    raise  # the statement's own failure (a lock timeout, a cancel)
                lost = True
            # Out of the except block: the driver's error, whose text may quote the
            # statement, is not kept as the context of ours.
            if lost and attempt == 0 and again:
                continue
            raise self._unavailable()
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._live()
        lost = False
        try:
            with conn.transaction():
                self._in_transaction = True
                try:
                    yield
                finally:
                    self._in_transaction = False
        except IndexUnavailable:
            raise
        except _DRIVER_LOST:
            # Lost as it committed or rolled back: the server rolled back what it held,
            # unless the COMMIT reached it first (the caller reads what is stored).
            if not self._gone(conn):
                raise
            lost = True
        if lost:
            raise self._unavailable()

    def close(self) -> None:
        self._conn.close()


#: A statement on a connection cut without a reset fails after about this long.
CUT_AFTER_S = 30


def connector(url: str, *, where: str, read_only: bool) -> Connect:
    """How the store connects to ``url``, at start and again: autocommit (transactions are
    opened where they belong), and, for a copy kept as evidence, every transaction of the
    session read-only, on each new connection as on the first."""

    def connect(within: int) -> psycopg.Connection[Any]:
        why: str | None = None
        try:
            # Keepalives and a TCP user timeout, as the desk's: on a network cut without a
            # reset a statement would otherwise wait for ever (about 15 minutes of kernel
            # retries), and with it the console's pages and /readyz, whose calls are
            # synchronous; cut, the call fails and the next connects again, as after a restart.
            conn = psycopg.connect(
                url, autocommit=True, connect_timeout=within, keepalives=1, keepalives_idle=10,
                keepalives_interval=5, keepalives_count=3, tcp_user_timeout=CUT_AFTER_S * 1000,
            )  # fmt: skip
            try:
                if read_only:
                    # PostgreSQL then refuses any write, autocommitted statements' too.
                    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            # The reason in Accord's words, never the driver's text (``why_not_connected``).
            why = why_not_connected(exc)
        else:
            return conn
        # Raised outside the except block: inside it, even ``from None`` keeps the driver's
        # error as __context__, whose text may quote the URL's password.
        raise IndexUnavailable(where, why)

    return connect
