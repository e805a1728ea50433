"""``/livez`` and ``/readyz`` of the desk and of the flag service (``broker.ops``).

The desk is live while its web server and its ingest loop run, and ready once its pages are
served, the ingest loop (the party's delivery consumer) is running and its users file holds
an account: a desk whose consumer has stopped shows ever older records, and a container
platform must say so. A desk with no account yet runs (``add-user`` is run in its container)
but is not ready, until ``add-user`` has made one: no restart. The flag service
is ready once faust has started its agents and tasks (after its tables' recovery), and live
while a beat its own event loop makes every second is recent: answering at all shows the loop
is not blocked, and the beat shows faust's task machinery still runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from broker.ops import OK, Check, Heartbeat
from broker.webauth import accounts_ready

__all__ = ["BEAT_SECONDS", "DeskProbes", "FlagsProbes"]

#: How often the flag service's loop beats (its ``stale_after_seconds`` is 30 by default).
BEAT_SECONDS = 1.0


def _running(task: asyncio.Task[Any] | None) -> bool:
    return task is not None and not task.done()


class DeskProbes:
    """The desk's probes, from its two tasks (the web server's and the ingest loop's) and its
    users file (``accounts``: ``UserFile.has_accounts``)."""

    def __init__(self, *, server_started: Callable[[], bool], accounts: Callable[[], bool]) -> None:
        self._server_started = server_started
        self._accounts = accounts
        self.http: asyncio.Task[Any] | None = None
        self.ingest: asyncio.Task[Any] | None = None

    def live(self) -> Check:
        # Before the tasks exist the desk is opening its clients: live, or a slow start
        # would be restarted for ever.
        if self.http is None:
            return Check(ok=True, reason="starting")
        if not _running(self.http):
            return Check(ok=False, reason="web server stopped")
        if not _running(self.ingest):
            return Check(ok=False, reason="delivery consumer stopped")
        return OK

    def ready(self) -> Check:
        if not _running(self.http) or not self._server_started():
            return Check(ok=False, reason="web server not started")
        if not _running(self.ingest):
            return Check(ok=False, reason="delivery consumer not running")
        return accounts_ready(self._accounts)


class FlagsProbes:
    """The flag service's probes: ready once faust runs its tasks, live while it beats."""

    def __init__(self, stale_after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._heart = Heartbeat(stale_after, clock=clock)
        self._stopping = False

    @property
    def started(self) -> bool:
        return self._heart.beaten

    def beat(self) -> None:
        self._heart.beat()

    def stopping(self) -> None:
        """The service is shutting down: no longer ready (it has not stalled: still live)."""
        self._stopping = True

    def live(self) -> Check:
        return self._heart.check()

    def ready(self) -> Check:
        if self._stopping:
            return Check(ok=False, reason="stopping")
        if not self._heart.beaten:
            return Check(ok=False, reason="agents not started")
        return self._heart.check()

    async def run(self) -> None:
        """Beat every :data:`BEAT_SECONDS` until cancelled: a faust ``app.task``, which faust
        starts only once its agents are started and its tables recovered."""
        while True:
            self.beat()
            await asyncio.sleep(BEAT_SECONDS)
