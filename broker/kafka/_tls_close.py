"""A TLS connection's close, bounded on the event loop every Accord command runs.

Closing a TLS connection sends the peer a close_notify and waits for the peer's own before
the socket goes: for ``ssl_shutdown_timeout`` seconds, 30 by default in asyncio and uvloop
alike. aiokafka does not set it. A Kafka 4.1 broker that reads a request and the client's
close_notify in one read answers the request and never the close_notify (docs/performance.md,
*Where a live worker's CPU goes*), so on uvloop a client stopped just after it sent a request
(a consumer's fetcher sends one as it stops) waits out those 30 s; on the standard library's
loop the answer ends the connection, but a peer that answers nothing holds it the same 30 s.

By then every request the client cares about has been answered: aiokafka closes its
connections last, after its producer's batches are delivered and its consumer has left its
group. So the close is given :data:`TLS_CLOSE_S`, then the transport is aborted, which loses
nothing but the peer's goodbye. ``stop_bounded`` and the SDK's bounded stops still bound
the rest of a stop.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["TLS_CLOSE_S", "bound_tls_close"]

#: Seconds a TLS close waits for the peer's close_notify before the connection is dropped.
#: A healthy close takes 10-70 ms here; the flush of whatever is still buffered counts too.
TLS_CLOSE_S = 3.0


def bound_tls_close(loop: asyncio.AbstractEventLoop, seconds: float = TLS_CLOSE_S) -> None:
    """Make ``loop``'s TLS connections wait at most ``seconds`` for the peer's close_notify,
    unless their caller names a wait itself (aiokafka does not).

    On the loop, not on aiokafka: the connection is made in aiokafka's ``connect``, which
    has no parameter for it, and every Accord command builds its own loop (``broker.cli``).
    """
    create_connection = loop.create_connection

    async def bounded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("ssl") and kwargs.get("ssl_shutdown_timeout") is None:
            kwargs["ssl_shutdown_timeout"] = seconds
        return await create_connection(*args, **kwargs)

    # An attribute of this one loop, not a subclass: asyncio's loop and uvloop's are both
    # built by their own factories, and a method on the instance shadows the class's.
    loop.create_connection = bounded  # type: ignore[method-assign]
