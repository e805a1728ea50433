"""``stop_within`` leaves a producer's stop (and its abandoning) running past its bound, held
until it ends: a task nobody holds is collected while still pending, and asyncio's "Task was
destroyed but it is pending!" then lands wherever the collector happens to run."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from structlog.testing import capture_logs

from broker.kafka import _errors
from broker.pipeline import _tasks


class _Stuck:
    """A producer whose stop waits on a future only that stop holds: as soon as nothing
    holds the stop's task, the collector can take both."""

    def __init__(self) -> None:
        self.stops = 0

    async def stop(self) -> None:
        self.stops += 1
        await asyncio.get_running_loop().create_future()


async def test_a_stop_past_its_bound_is_held_until_it_ends_and_never_destroyed_pending(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_tasks, "CLOSE_WITHIN_S", 0.05)
    caplog.set_level(logging.ERROR, logger="asyncio")
    before = set(_errors._stopping)
    producer = _Stuck()
    await _tasks.stop_within(producer)  # type: ignore[arg-type]  # a fake producer
    assert producer.stops == 2  # its stop, then abandon's (a fake is only stopped)
    left = _errors._stopping - before
    assert len(left) == 2
    assert not any(task.done() for task in left)
    del left
    gc.collect()
    destroyed = [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
    assert destroyed == []
    for task in _errors._stopping - before:  # what the unit tests' own fixture does, now
        task.cancel()
    for _ in range(10):  # the cancellations run, then the callbacks that let go of them
        await asyncio.sleep(0)
    assert _errors._stopping - before == set()


class _Failing:
    """A producer whose stop fails with something ``stop_quietly`` lets through (a bug, not
    Kafka), its text standing for what such an exception may quote."""

    async def stop(self) -> None:
        raise RuntimeError("a record's text: NHS 9434765919")


async def test_a_stop_failing_with_a_bug_is_logged_by_its_type_only_never_with_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with capture_logs() as logs:
        await _tasks.stop_within(_Failing())  # type: ignore[arg-type]  # a fake producer
        for _ in range(10):  # the stop's task ends, then its callbacks run
            await asyncio.sleep(0)
        gc.collect()
    failed = [e for e in logs if e["event"] == "kafka_stop_failed_in_background"]
    assert [e["error"] for e in failed] == ["RuntimeError"]
    assert "9434765919" not in repr(logs)
    assert not [r for r in caplog.records if "9434765919" in r.getMessage()]
