"""Consent entries sealed again to the worker's current encryption key, by one task.

The consent table lives in ``accord.worker.state``, each entry sealed to the worker's own
encryption key: revoking a key loses every entry still sealed to it. So whenever the view
holds entries sealed to a key other than the current one, the task of ``accord.consent``
partition 0 writes them again, sealed to the current key, in its next transaction: one task
of one worker (the same one each time), for the whole table, as ``k:`` entries are global.
That happens when the task opens (at start, or when the group hands the partition over),
when the key watcher sees a new encryption key (``_keywatch``), and, a few seconds later,
for entries another worker filed under the old key before it picked the new one up. The
loop asks between batches, never while one is being processed. ``state_resealed`` is logged
once the transaction commits (``Commits``), or at once when a task's opening or a new key
finds nothing to do (``entries=0``). An entry is queued once under a key until the tail
reads it back, whoever asks: a check that got to a reloaded keystore before the watcher's
announcement does not make the announcement queue the whole table again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from broker.pipeline._tasks import Batch, Task

log = structlog.get_logger("accord.worker")


class Sealed(Protocol):
    """The view's sealed entries, measured against the worker's current key (``EntryReader``)."""

    def current_key(self) -> str | None: ...
    def stale(self) -> int: ...
    def resealable(self) -> dict[str, bytes]: ...


class _Nothing:
    """No view to seal again (a loop run without one: benchmarks, tests)."""

    def current_key(self) -> str | None:
        return None

    def stale(self) -> int:
        return 0

    def resealable(self) -> dict[str, bytes]:
        return {}


class Reseals:
    """What the task of consent partition 0 seals again, without writing an entry twice."""

    def __init__(self, sealed: Sealed | None = None) -> None:
        self._sealed: Sealed = sealed if sealed is not None else _Nothing()
        # Entries this worker has queued, sealed to which key, until the tail reads them
        # back: without it, the check every few seconds would queue them again meanwhile.
        self._writing: dict[str, str] = {}
        self._batch: Batch | None = None  # the batch it last queued entries in

    def add_to(self, task: Task, *, announce: bool) -> int:
        """Queue on ``task`` the entries not under the current key and not queued under it
        already; returns how many.

        ``announce`` (a task's opening, a new key): ``state_resealed`` follows, after this:
        ``entries=0`` at once if there is nothing to seal; else once the batch holding them
        commits (logged by ``Commits``), including one a check queued them in before the
        announcement came (a keystore reloaded between two of the watcher's looks).
        """
        queued: set[str] = set()
        if not self._sealed.stale():
            self._writing.clear()  # all read back under the current key (or none to do)
            entries: dict[str, bytes] = {}
        else:
            current = self._sealed.current_key()
            stale = self._sealed.resealable()
            self._writing = {n: k for n, k in self._writing.items() if n in stale}
            queued = {n for n, k in self._writing.items() if k == current}
            entries = {n: p for n, p in stale.items() if n not in queued}
            if current is not None:
                self._writing.update(dict.fromkeys(entries, current))
        if entries:
            task.pending.outs += task.processor.reseal(entries)
            task.pending.resealed = (task.pending.resealed or 0) + len(entries)
            self._batch = task.pending
        elif announce and queued:
            self._announce_queued(task, len(queued))
        elif announce:
            log.info("state_resealed", entries=0)
        return len(entries)

    def _announce_queued(self, task: Task, count: int) -> None:
        """``state_resealed`` for entries queued before the announcement, once committed."""
        if self._batch is task.pending:
            return  # not committed yet: its commit logs it
        running, held = task.in_flight, self._batch

        def committed(done: asyncio.Task[Batch]) -> None:
            # Its own commit logs it if it held them; else they committed before it did.
            if not done.cancelled() and done.exception() is None and done.result() is not held:
                log.info("state_resealed", entries=count)

        if running is None:
            log.info("state_resealed", entries=count)  # committed, not read back yet
        else:
            running.add_done_callback(committed)

    def forget(self) -> None:
        """The task was given up: what it had queued and not committed is dropped with it,
        so the next owner's opening (this worker's or another's) queues all of it again."""
        self._writing.clear()
        self._batch = None
