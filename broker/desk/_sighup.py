"""SIGHUP, ignored by the desk and its flag service, with one log line.

The worker reloads its bundle on SIGHUP (docs/operations.md, "Policy reload"), so an operator
may send it to a desk or a flag service too. Neither can reload (a flag service's windows and
a desk's pages were built from the bundle it started with), and the default action would end
the process without a word. Each says it ignored the signal and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator

import structlog

__all__ = ["RESTART_HINT", "sighup_ignored"]

log = structlog.get_logger("accord.desk")

RESTART_HINT = "restart to load a new bundle"


@contextlib.contextmanager
def sighup_ignored(event: str, **fields: str) -> Iterator[None]:
    """Within the block, SIGHUP logs ``event`` (with ``fields`` and :data:`RESTART_HINT`) at
    warning and is otherwise ignored; the previous handler is put back after. Outside the
    main thread (a test's desk) nothing is installed: only it may set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def say() -> None:
        log.warning(event, **fields, hint=RESTART_HINT)

    def handler(_signum: int, _frame: object) -> None:
        # A signal handler interrupts whatever the main thread was doing, a write to stderr
        # included: the line is written from the event loop's own turn when one is running.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            say()
            return
        loop.call_soon_threadsafe(say)

    previous = signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
