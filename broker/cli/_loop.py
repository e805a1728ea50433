"""Running the CLI's coroutines: every command's event loop reports a leftover of a
connection the Kafka client already gave up as a debug line, not a traceback on stderr
after the command's own output (``quiet_leftovers``); a long-lived service's loop is the
one its settings name."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from broker.config import EventLoop

__all__ = ["run", "run_on"]

_T = TypeVar("_T")
_L = TypeVar("_L", bound=asyncio.AbstractEventLoop)


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``, on a loop whose exception handler is ``quiet_leftovers``.

    A command that succeeded must not end with asyncio's "Future exception was never
    retrieved" and a traceback, printed when the garbage collector meets a future aiokafka
    left behind (a TLS connection closed late): the officer would read it as a failure.
    """
    with asyncio.Runner() as runner:
        _quiet(runner.get_loop())
        return runner.run(main)


def run_on(loop: EventLoop, main: Coroutine[Any, Any, _T]) -> _T:
    """:func:`run` on the loop chosen: uvloop unless told otherwise.

    uvloop is an optional dependency only where it has no wheels (Windows): there the
    standard library's loop runs the same code, and says so once, since the CPU figures in
    docs/performance.md assume uvloop.
    """
    if loop is EventLoop.UVLOOP:
        try:
            import uvloop  # imported only by the services that run on it
        except ImportError:
            structlog.get_logger("accord").warning(
                "event_loop_unavailable", wanted=str(loop), running=str(EventLoop.ASYNCIO)
            )
        else:
            return uvloop.run(main, loop_factory=lambda: _quiet(uvloop.new_event_loop()))
    return run(main)


def _quiet(loop: _L) -> _L:
    # Imported here: aiokafka loads when a command needs Kafka, not for ``accord --help``.
    from broker.kafka import bound_tls_close, quiet_leftovers

    loop.set_exception_handler(quiet_leftovers)
    bound_tls_close(loop)  # a TLS close Kafka never answers would take 30 s
    return loop
