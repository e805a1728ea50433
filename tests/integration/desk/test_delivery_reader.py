"""The flag service's first step on real Kafka: a delivery topic written in transactions (so
its offsets have holes) is read with no record skipped across crashes, and a record's offset
is committed only once what it sent on is acknowledged (faust's own consumer lost records
here: ``broker/desk/_flags_source.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from broker.desk._flags_source import DeliveryReader, Opened
from broker.kafka import TopicPartition
from broker.topics import deliver, desk_flags_reader
from tests.kafka_helpers import admin_settings, clients, create_topics, unique_topic

RECORDS = 30


Handle = Callable[[bytes | None, Any], Awaitable[list[Awaitable[Any]]]]


def _opening(handle: Handle) -> Callable[[bytes | None, Any], Opened]:
    """The reader's open step over a test's handler: nothing opened, handled when sent."""
    return lambda value, headers: Opened(None, lambda: handle(value, headers))


class Crash(Exception):
    """The handler's stand-in for a process killed mid-batch."""


async def _write_in_transactions(bootstrap: str, topic: str) -> None:
    """RECORDS records, one transaction each (every commit marker takes an offset), and one
    aborted transaction in the middle that no reader may see."""
    producer = clients(bootstrap).transactional_producer(unique_topic("tx"), "test-deliveries")
    await producer.start()
    try:
        for i in range(RECORDS):
            async with producer.transaction():
                await producer.send(topic, f"r{i}".encode(), key=f"k{i}".encode())
            if i == RECORDS // 2:
                await producer.begin_transaction()
                await producer.send(topic, b"aborted", key=b"aborted")
                await producer.abort_transaction()
    finally:
        await producer.stop()


async def _until(done: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    admin = clients(bootstrap).admin()
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, 0))
    return None if found is None or found.offset < 0 else int(found.offset)


async def _end(bootstrap: str, topic: str) -> int:
    consumer = clients(bootstrap).consumer(client_id="test-end")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _party_with_deliveries(bootstrap: str) -> tuple[str, str]:
    party = unique_topic("party")
    topic = deliver(party)
    await create_topics(bootstrap, [topic])
    await _write_in_transactions(bootstrap, topic)
    return party, topic


async def test_crashes_mid_batch_skip_no_record_of_a_transactional_topic(
    kafka_bootstrap: str,
) -> None:
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    handled: list[str] = []
    runs: list[list[str]] = []
    for crash_at in ("r5", "r17", "r29", None):  # three crashes, then a run to the end
        crashed = False
        runs.append([])

        async def handle(value: bytes | None, headers: Any, at: str | None = crash_at) -> list[Any]:
            nonlocal crashed
            assert value is not None
            if value.decode() == at and not crashed:
                crashed = True
                raise Crash
            handled.append(value.decode())
            runs[-1].append(value.decode())
            return []

        # Small batches: offsets are committed between the crashes, not only at the end.
        reader = DeliveryReader(
            admin_settings(kafka_bootstrap), party, _opening(handle), max_records=4
        )
        if crash_at is not None:
            with pytest.raises(Crash):
                await asyncio.wait_for(reader.run(), timeout=60)
        else:
            task = asyncio.create_task(reader.run())

            async def finished() -> bool:
                return handled[-1:] == [f"r{RECORDS - 1}"]

            try:
                await _until(finished, "the last run did not reach the last record")
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    assert set(handled) == {f"r{i}" for i in range(RECORDS)}  # none skipped
    assert "aborted" not in handled
    # Each run resumes after the last commit: past what earlier runs finished (commits did
    # happen), never past the record the crash interrupted.
    firsts = [int(run[0][1:]) for run in runs]
    # The last run committed past the last record (and its commit marker's hole).
    done = await _committed(kafka_bootstrap, desk_flags_reader(party), topic)
    assert done is not None
    assert done == await _end(kafka_bootstrap, topic) - 1
    assert firsts[0] == 0
    assert all(0 < later <= crash for later, crash in zip(firsts[1:], (5, 17, 29), strict=True))
    assert firsts[1] < firsts[2] < firsts[3]


async def test_an_offset_is_committed_only_after_its_sends_are_acknowledged(
    kafka_bootstrap: str,
) -> None:
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def handle(value: bytes | None, headers: Any) -> list[Awaitable[Any]]:
        assert value is not None
        seen.append(value.decode())
        return [acknowledged] if value == b"r0" else []

    reader = DeliveryReader(admin_settings(kafka_bootstrap), party, _opening(handle))
    task = asyncio.create_task(reader.run())

    async def read_all() -> bool:
        return len(seen) == RECORDS

    async def committed() -> bool:
        return await _committed(kafka_bootstrap, desk_flags_reader(party), topic) is not None

    try:
        await _until(read_all, "the reader did not read every record")
        await asyncio.sleep(2)  # time for a premature commit to land
        assert not await committed()
        acknowledged.set_result(None)
        await _until(committed, "no commit once the send was acknowledged")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen[0] == "r0"
