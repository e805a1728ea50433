"""On real Kafka: ``accord desk reset-offsets --as PARTY`` sets the desk's groups back to the
earliest record Kafka keeps, and its replay memory with them, so a desk whose store was lost
or restored older is handed its deliveries and flags again (and opens them, not refusing them
as replays); a desk still running is refused before its replay memory or any group moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.cli import main
from broker.cli._desk_offsets import Rewound, rewind_groups
from broker.errors import TransportError
from broker.sdk import SqliteReplayMemory, default_replay_file
from broker.topics import desk_flags
from tests.integration.desk.test_delivery_reader import _party_with_deliveries
from tests.kafka_helpers import admin_env, clients, create_topics

pytestmark = pytest.mark.kafka


async def _read_to_end(bootstrap: str, topic: str, group: str) -> int:
    """Read ``topic`` as ``group`` to its end and commit there, as a desk that has read all."""
    consumer = clients(bootstrap).consumer(topic, client_id="test-desk", group=group)
    await consumer.start()
    try:
        for _ in range(50):
            if consumer.assignment():
                break
            await consumer.getmany(timeout_ms=200)
        [tp] = sorted(consumer.assignment())
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            await consumer.getmany(timeout_ms=200)
        await consumer.commit()
        return int(end)
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = clients(bootstrap).admin("test-offsets")
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): int(o.offset) for tp, o in found.items()}


async def test_the_desks_groups_and_replay_memory_go_back_to_the_earliest_record(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    flags = desk_flags(party)
    await create_topics(kafka_bootstrap, [flags])
    producer = clients(kafka_bootstrap).producer("test-flags")
    await producer.start()
    try:
        await producer.send_and_wait(flags, b"a flag", key=b"f1")
    finally:
        await producer.stop()
    end = await _read_to_end(kafka_bootstrap, topic, f"{party}.desk")
    await _read_to_end(kafka_bootstrap, flags, f"{party}.desk-flags")
    assert (await _committed(kafka_bootstrap, f"{party}.desk"))[(topic, 0)] == end > 0
    # The desk's replay memory: a record opened at offset 3, the group committed past it.
    memory_file = default_replay_file(f"{party}.desk", tmp_path)
    memory = SqliteReplayMemory(memory_file, group=f"{party}.desk")
    assert memory.admit("e-3", topic=topic, partition=0, offset=3)
    memory.committed(topic, 0, end)
    assert not memory.admit("e-3", topic=topic, partition=0, offset=3)  # a rewind: refused
    memory.close()

    for name, value in admin_env(kafka_bootstrap).items():
        monkeypatch.setenv(name, value)  # the test's broker, as its admin
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    await asyncio.to_thread(main, ["desk", "reset-offsets", "--as", party])  # its own loop
    out = capsys.readouterr().out.splitlines()
    assert out == [  # the memory first: a group set back alone would refuse what it re-reads
        f"{party}.desk: replay memory {memory_file} set back to partition 0: 0",
        f"{party}.desk: reads {topic} again from partition 0: 0",
        f"{party}.desk-flags: reads {flags} again from partition 0: 0",
        f"start {party}'s desk: what it reads again and already holds is not stored twice",
    ]
    assert await _committed(kafka_bootstrap, f"{party}.desk") == {(topic, 0): 0}
    assert await _committed(kafka_bootstrap, f"{party}.desk-flags") == {(flags, 0): 0}
    memory = SqliteReplayMemory(memory_file, group=f"{party}.desk")
    try:
        assert memory.admit("e-3", topic=topic, partition=0, offset=3)  # handed over again
        assert not memory.admit("e-3", topic=topic, partition=0, offset=9)  # a copy: a replay
    finally:
        memory.close()


async def test_a_hub_without_flags_is_set_back_on_its_deliveries_alone(
    kafka_bootstrap: str,
) -> None:
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    await _read_to_end(kafka_bootstrap, topic, f"{party}.desk")
    [rewound] = await rewind_groups(clients(kafka_bootstrap), party)
    assert (rewound.group, rewound.topic, rewound.offsets) == (f"{party}.desk", topic, {0: 0})


async def test_a_desk_still_reading_is_not_set_back(kafka_bootstrap: str) -> None:
    party, topic = await _party_with_deliveries(kafka_bootstrap)
    running = clients(kafka_bootstrap).consumer(topic, client_id="test-desk", group=f"{party}.desk")
    await running.start()
    try:
        for _ in range(50):  # joined: the group has a member
            if running.assignment():
                break
            await running.getmany(timeout_ms=200)
        await running.commit()
        before = await _committed(kafka_bootstrap, f"{party}.desk")
        moved: list[Rewound] = []

        def memory(plan: list[Rewound]) -> Callable[[], None]:
            moved.extend(plan)
            return lambda: None

        # Asked of Kafka before anything moves (it used to find out at the commit, after the
        # replay memory had been set back).
        with pytest.raises(
            TransportError, match=rf"^{party}\.desk has 1 member\(s\): stop {party}'s desk first"
        ):
            await rewind_groups(clients(kafka_bootstrap), party, first=memory)
        assert moved == []
        assert await _committed(kafka_bootstrap, f"{party}.desk") == before
    finally:
        await running.stop()
