"""A desk's PostgreSQL connection that outlives a restart of the server or a cut network
(``broker._pg_live``, shared with the audit index).

The desk keeps one connection for its pages and its ingest (one event loop). When PostgreSQL
restarts (an upgrade, a fail-over), that connection is closed for good: without this, every
page failed with *Something went wrong* long after the server was back, and the next
delivery ended the desk with a traceback. Now a statement on a connection the server closed
raises :class:`StoreUnavailable` (pages answer 503 saying the database cannot be reached; the
ingest keeps the batch and tries it again), and a later statement connects again. A read is
never tried twice here: the page is asked again, the ingest tries its batch again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from broker._pg_live import Connect, NotConnected, ReconnectingConnection
from broker.errors import ConfigError, StoreUnavailable

__all__ = ["CUT_AFTER_S", "LiveConnection"]

# A statement on a silently cut connection fails after about this long (every page waits on
# it meanwhile: the driver is synchronous).
CUT_AFTER_S = 15


class LiveConnection(ReconnectingConnection):
    """The desk's: connected at once (``connect_within`` seconds), a failure then being the
    one-line ``ConfigError`` a desk has always started with; ``StoreUnavailable`` after."""

    def __init__(
        self,
        connect: Connect,
        *,
        where: str,
        connect_within: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        why: str | None = None
        try:
            conn = connect(connect_within)
        except NotConnected as exc:  # our words already, with no driver error behind
            why = exc.why
        if why is not None:  # raised out of the except block: no driver error chained
            raise ConfigError(why)
        super().__init__(
            connect,
            conn,
            unavailable=functools.partial(StoreUnavailable, where),
            retry_reads=False,
            clock=clock,
        )
