"""One PostgreSQL connection that outlives a restart of the server or a cut network: the
audit index's (``broker.governance._sql_live``) and a desk's (``broker.desk._store_live``).

Each store keeps one connection. When PostgreSQL restarts (an upgrade, a fail-over) the
server ends it, and before this every later call failed on it for good: the console answered
``/readyz`` 503 until someone restarted it, a desk's pages failed long after the server was
back. Now a statement on a connection the server ended raises the store's own error (one
line, our words, never the driver's: its text can quote the statement, or a URL's password),
and a later statement connects again.

Never inside a transaction: a connection lost mid-transaction is not replaced there (whether
it began with ``transaction()`` or a plain ``BEGIN``), or the transaction's later statements
would each commit alone on the new one; the server rolled back what it held, and the caller
is told. The driver is synchronous, and the console's probes and a desk's pages share its
event loop: connecting again is tried at most once every ``RETRY_AFTER_S`` after a failed
attempt, with a short timeout, and refused at once in between; and a network cut without a
reset, which would hold a statement for the kernel's ~15 minutes, is bounded by keepalives
and a TCP user timeout (``connector``'s ``cut_after_s``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

__all__ = [
    "RECONNECT_WITHIN_S",
    "RETRY_AFTER_S",
    "Connect",
    "NotConnected",
    "ReconnectingConnection",
    "connector",
]

RETRY_AFTER_S = 5.0  # after a failed attempt to connect again, calls fail at once this long
RECONNECT_WITHIN_S = 2  # an attempt to connect again waits at most this long (seconds)


class NotConnected(Exception):
    """A ``Connect`` failed; ``why`` is in Accord's words (``why_not_connected``), never the
    driver's, and no driver error is chained to it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# Given the connection timeout in seconds; raises NotConnected.
Connect = Callable[[int], psycopg.Connection[Any]]

# The store's error for "cannot be reached", given the ``why`` of the last failed attempt to
# connect (None: the connection was lost, no attempt failed since).
Unavailable = Callable[[str | None], Exception]

# The driver's failures that can mean the connection itself is gone (AdminShutdown, raised
# when the server ends the session, is an OperationalError); which one it was is decided by
# the connection's state, never by the message.
_DRIVER_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class ReconnectingConnection:
    """What a store uses of a psycopg connection (``execute``, ``transaction``, ``close``);
    one the server closed is made again by ``connect`` when next used.

    ``unavailable`` makes the store's error. ``retry_reads``: a ``SELECT`` outside a
    transaction is tried once more on a fresh connection (nothing of it can have been applied
    twice); the audit index's reads are, a desk's are not (its pages answer 503 and are
    asked again)."""

    def __init__(
        self,
        connect: Connect,
        conn: psycopg.Connection[Any],
        *,
        unavailable: Unavailable,
        retry_reads: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._conn = conn
        self._unavailable_as = unavailable
        self._retry_reads = retry_reads
        self._clock = clock
        self._in_transaction = False
        self._failed_at: float | None = None
        self._why: str | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The connection now in use (tests end its session from another one)."""
        return self._conn

    def _unavailable(self) -> Exception:
        return self._unavailable_as(self._why)

    def _live(self) -> psycopg.Connection[Any]:
        if not self._conn.closed:  # broken (ended by the server) is closed too
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
        except NotConnected as exc:
            failed, self._why = True, exc.why
        if failed:  # raised out of the except block: one error, not a chain of two
            self._failed_at = self._clock()
            raise self._unavailable()
        self._failed_at = self._why = None
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] | None = ()) -> psycopg.Cursor[Any]:
        # A plain BEGIN (a desk's snapshot reads, a migration) is a transaction too.
        word = sql.lstrip()[:8].upper()
        ends = word.startswith(("COMMIT", "ROLLBACK"))
        if ends and self._in_transaction and self._conn.closed:
            # Its transaction went with the connection: ended, so the next use may connect
            # again (a COMMIT's writes were never committed; the caller is told).
            self._in_transaction = False
            raise self._unavailable()
        again = self._retry_reads and not self._in_transaction and word.startswith("SELECT")
        for attempt in range(2 if again else 1):
            conn = self._live()
            lost = False
            try:
                cursor = conn.execute(sql, params)
            except _DRIVER_LOST:
                if not conn.closed:
                    raise  # the statement's own failure (a lock timeout, a cancel)
                lost = True
            if not lost:
                if word.startswith("BEGIN"):
                    self._in_transaction = True
                elif ends:
                    self._in_transaction = False
                return cursor
            # Out of the except block: the driver's error, whose text may quote the
            # statement, is not kept as the context of ours. Inside a transaction the caller
            # is refused until it ends it (``transaction`` unwinding; a plain BEGIN's
            # ROLLBACK or COMMIT, above); the next use after that connects again.
            if attempt == 0 and again:
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
        except _DRIVER_LOST:
            # Lost as it committed or rolled back: the server rolled back what it held,
            # unless the COMMIT reached it first (the caller reads what is stored).
            if not conn.closed:
                raise
            lost = True
        if lost:
            raise self._unavailable()

    def close(self) -> None:
        self._conn.close()


def connector(
    url: str,
    *,
    cut_after_s: int,
    reason: Callable[[psycopg.Error], str],
    setup: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> Connect:
    """How a store connects to ``url``, at start and again: autocommit (transactions are
    opened where they belong), then ``setup`` on each new connection as on the first. A
    failure raises ``NotConnected`` with ``reason``'s words for the driver's error.

    A statement on a connection cut without a reset fails after about ``cut_after_s``."""

    def connect(within: int) -> psycopg.Connection[Any]:
        why = ""
        try:
            # A TCP user timeout bounds a statement waiting on a silent server; keepalives
            # (idle a third of the cut-off, then three probes a sixth apart) find an idle
            # connection cut within it too, so the next statement connects again at once.
            conn = psycopg.connect(
                url, autocommit=True, connect_timeout=within, keepalives=1,
                keepalives_idle=cut_after_s // 3, keepalives_interval=cut_after_s // 6,
                keepalives_count=3, tcp_user_timeout=cut_after_s * 1000,
            )  # fmt: skip
            try:
                if setup is not None:
                    setup(conn)
            except BaseException:
                conn.close()
                raise
        except psycopg.Error as exc:
            why = reason(exc)
        else:
            return conn
        # Raised outside the except block: inside it, even ``from None`` keeps the driver's
        # error as __context__, whose text may quote the URL's password.
        raise NotConnected(why)

    return connect
