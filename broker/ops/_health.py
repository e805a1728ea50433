"""Liveness and readiness as values: what ``/livez`` and ``/readyz`` answer.

A check's reason is a fixed phrase written in code ("no partitions assigned"), never data
from a record, a user or an error message: probe answers may be read by anyone who can
reach the ops port, and end up in the platform's event logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Monotonic = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    reason: str = "ok"


OK = Check(ok=True)

#: A probe: asked on each request, answered from state the process keeps anyway.
Probe = Callable[[], Check]


class Heartbeat:
    """When a process's main loop last went round: live while that is recent.

    The loop calls ``beat()`` each time round (at least every second or so when idle); a loop
    wedged on a lock, a hung database call or a dead task stops beating and the probe fails
    after ``stale_after`` seconds, so the orchestrator restarts the process.
    """

    def __init__(self, stale_after: float, *, clock: Monotonic = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._at: float | None = None

    def beat(self) -> None:
        self._at = self._clock()

    @property
    def beaten(self) -> bool:
        return self._at is not None

    def age(self) -> float | None:
        return None if self._at is None else self._clock() - self._at

    def check(self) -> Check:
        age = self.age()
        if age is None:
            # Before the first beat the process is starting (restoring state, connecting):
            # live, or a slow start would be killed and restarted for ever.
            return Check(ok=True, reason="starting")
        if age > self.stale_after:
            return Check(ok=False, reason="main loop stalled")
        return OK


def first_failure(checks: Iterable[Probe]) -> Check:
    """The first check that fails, else OK: checks are asked in order, cheapest first."""
    for probe in checks:
        result = probe()
        if not result.ok:
            return result
    return OK
