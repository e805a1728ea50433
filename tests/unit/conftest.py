"""Fixtures for the unit tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _stops_left_running_end_with_their_test() -> Iterator[None]:
    """``broker.kafka.stop_bounded`` (and the pipeline's ``stop_within``, through
    ``stop_in_background``) leaves a stop past its bound running, held in a module-wide
    set; the tests' event loop lives for the whole session, so a fake whose stop never
    ends would stay in that set, and run, through every later test. Cancelled here:
    the set lets go of each once its cancellation has run. A task of a loop closed with it
    still pending (a TestClient's portal closes its loop without cancelling what is left)
    runs no more and is kept in the set: let go of, it would be destroyed pending whenever
    the collector came to it, and asyncio's "Task was destroyed but it is pending!" would
    land in whichever later test was running (a CLI test's stderr, say)."""
    yield
    errors = sys.modules.get("broker.kafka._errors")
    if errors is None:  # nothing imported it: nothing can be left
        return
    for stopping in list(errors._stopping):
        if not stopping.get_loop().is_closed():
            stopping.cancel()
