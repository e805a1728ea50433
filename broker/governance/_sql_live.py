"""The audit index's PostgreSQL connection, made again after the server ended it
(``broker._pg_live``, shared with a desk's store).

The store keeps one connection. When PostgreSQL restarts (an upgrade, a fail-over) the server
ends it, and before this every later call failed on it for good: the console answered
``/readyz`` 503 until someone restarted it, and ``accord audit index --follow`` ended with the
driver's traceback. Now a statement on a connection the server ended raises
:class:`IndexUnavailable` (one line, our words, never the driver's), and a later statement
connects again. A read outside a transaction is tried once more on a fresh connection
(nothing of it can have been applied twice): a console page or probe answers at once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import psycopg

from broker._pg_live import Connect, ReconnectingConnection
from broker._pg_live import connector as _connector
from broker.errors import IndexUnavailable
from broker.governance._pg_connect import why_not_connected

__all__ = ["CUT_AFTER_S", "LiveIndexConnection", "connector"]

#: A statement on a connection cut without a reset fails after about this long.
CUT_AFTER_S = 30


class LiveIndexConnection(ReconnectingConnection):
    """The audit index's: given its first connection (the store says why it failed, as an
    ``AuditError``); ``IndexUnavailable`` after."""

    def __init__(
        self,
        connect: Connect,
        conn: psycopg.Connection[Any],
        *,
        where: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            connect,
            conn,
            unavailable=functools.partial(IndexUnavailable, where),
            retry_reads=True,
            clock=clock,
        )


def _read_only(conn: psycopg.Connection[Any]) -> None:
    # PostgreSQL then refuses any write, autocommitted statements' too.
    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")


def connector(url: str, *, read_only: bool) -> Connect:
    """How the store connects to ``url``, at start and again (``NotConnected`` if it cannot);
    for a copy kept as evidence, every transaction of the session read-only, on each new
    connection as on the first."""
    return _connector(
        url,
        cut_after_s=CUT_AFTER_S,
        reason=why_not_connected,
        setup=_read_only if read_only else None,
    )
