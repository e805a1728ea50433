"""``stop_bounded``: a client's stop is waited for at most a bound, then left running in the
background, neither cancelled nor forgotten (a Kafka broker that reads a fetch and the TLS
close_notify together never answers the close_notify: the close waits 30 s for it)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from broker.kafka import _errors, stop_bounded


class _Client:
    """A client whose stop ends when ``release`` is set (never, unless a test sets it)."""

    def __init__(self) -> None:
        self.stop_begun = asyncio.Event()
        self.release = asyncio.Event()
        self.stopped = False
        self.cancelled = False

    async def stop(self) -> None:
        self.stop_begun.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.stopped = True


async def test_a_stop_that_hangs_is_left_running_past_the_bound_neither_cancelled_nor_lost() -> (
    None
):
    before = set(_errors._stopping)  # another test's stop may still be running
    client = _Client()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await stop_bounded(client, 0.1) is False
    assert loop.time() - began < 1
    assert client.stop_begun.is_set()
    assert not client.cancelled
    assert len(_errors._stopping - before) == 1  # held: asyncio keeps only weak references
    gc.collect()
    client.release.set()  # the broker answers at last: the stop finishes, and is let go of
    for _ in range(10):
        await asyncio.sleep(0)
    assert client.stopped
    assert not client.cancelled
    assert _errors._stopping - before == set()


async def test_the_default_bound_is_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_errors, "CLOSE_WAIT_S", 0.05)
    client = _Client()
    assert await asyncio.wait_for(stop_bounded(client), timeout=2) is False
    client.release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert client.stopped


async def test_a_fast_stop_returns_at_once() -> None:
    before = set(_errors._stopping)
    client = _Client()
    client.release.set()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await stop_bounded(client, 30) is True
    assert loop.time() - began < 0.5
    assert client.stopped
    assert _errors._stopping - before == set()


async def test_a_stop_failing_with_a_kafka_error_is_quiet() -> None:
    class _Failing:
        async def stop(self) -> None:
            raise KafkaConnectionError("gone")

    assert await stop_bounded(_Failing(), 1) is True


async def test_the_caller_cancelled_leaves_the_stop_running() -> None:
    before = set(_errors._stopping)
    client = _Client()
    waiting = asyncio.create_task(stop_bounded(client, 30))
    await client.stop_begun.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not client.cancelled
    assert len(_errors._stopping - before) == 1
    client.release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert client.stopped
    assert _errors._stopping - before == set()


class _FailingLate(_Client):
    """A client whose stop, once released, fails with ``error``; a bug's text stands for what
    such an exception may quote."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error or RuntimeError("a record's text")
        self._client = type("_Inner", (), {"_client_id": "accord-test-late"})()

    async def stop(self) -> None:
        self.stop_begun.set()
        await self.release.wait()
        raise self.error


@pytest.mark.parametrize("left_by", ["the bound", "the caller cancelled"])
async def test_a_stop_left_running_that_fails_with_a_bug_is_logged_once_by_type_only(
    left_by: str,
) -> None:
    client = _FailingLate()
    with capture_logs() as logs:
        if left_by == "the bound":
            assert await stop_bounded(client, 0.05) is False
        else:
            waiting = asyncio.create_task(stop_bounded(client, 30))
            await client.stop_begun.wait()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        client.release.set()
        for _ in range(10):
            await asyncio.sleep(0)
    failed = [e for e in logs if e["event"] == "kafka_stop_failed_in_background"]
    assert failed == [
        {
            "event": "kafka_stop_failed_in_background",
            "log_level": "warning",
            "client_id": "accord-test-late",
            "error": "RuntimeError",
        }
    ]
    assert "a record's text" not in repr(logs)


async def test_a_stop_left_running_that_ends_well_or_with_a_kafka_error_logs_no_warning() -> None:
    ended, kafka_failed = _Client(), _FailingLate(KafkaConnectionError("gone"))
    with capture_logs() as logs:
        assert await stop_bounded(ended, 0.05) is False
        assert await stop_bounded(kafka_failed, 0.05) is False
        ended.release.set()
        kafka_failed.release.set()
        for _ in range(10):
            await asyncio.sleep(0)
    assert ended.stopped
    assert [e for e in logs if e["log_level"] == "warning"] == []


def test_a_stop_still_running_when_the_command_ends_is_cancelled_without_a_word() -> None:
    """The usual end of a CLI command that left a stop running: ``asyncio.run`` cancels it,
    and nothing is said about it (not a traceback from the callback, not a warning)."""
    problems: list[dict[str, object]] = []

    async def command() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: problems.append(ctx))
        assert await stop_bounded(_Client(), 0.05) is False

    with capture_logs() as logs:
        asyncio.run(command())
    assert problems == []
    assert [e for e in logs if e["log_level"] != "debug"] == []
