"""Running a long-lived service's coroutine on the event loop its settings name."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from broker.config import EventLoop

__all__ = ["run_on"]

_T = TypeVar("_T")


def run_on(loop: EventLoop, main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on the loop chosen: uvloop unless told otherwise.

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
            return uvloop.run(main)
    return asyncio.run(main)
