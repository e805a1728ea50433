"""A recipient's replay protection survives its restart, on the real broker and real worker.

The worker delivers real incidents once for the module; each test then reads the
recipient's delivery topic in its own consumer group, with its own replay memory file, and
restarts its subscriber the way a recipient's process would be restarted: a copy of a genuine
record written again (by the admin's login, playing anyone able to write to the topic) is
reported as a replay, a record whose offset was never committed because the process was
killed while handling it is yielded again, and a group whose offsets went back does not get
what it handled a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.sdk import Publisher, Subscriber, Unopenable
from broker.topics import deliver
from tests.e2e.worker_proc import (
    POLICIES,
    incidents,
    predicted,
    project_broker,
    read_all,
    worker_in_process,
)
from tests.kafka_helpers import clients, kafka_env, tries_within

pytestmark = pytest.mark.slow

Seen = tuple[list[str], list[Unopenable]]


@dataclass(frozen=True)
class Delivered:
    bootstrap: str
    keys: FileKeyStore
    recipient: str
    event_ids: frozenset[str]

    @property
    def topic(self) -> str:
        return deliver(self.recipient)


@pytest.fixture(scope="module")
async def delivered(
    isolated_kafka: EmbeddedKafka, tmp_path_factory: pytest.TempPathFactory
) -> Delivered:
    """Incidents published by wmp and delivered by the worker; the recipient that got most."""
    bootstrap = isolated_kafka.bootstrap
    home = tmp_path_factory.mktemp("replay-e2e")
    policy, keys = project_broker(bootstrap, home)
    events = incidents(6)
    expected, _ = predicted(policy, events)
    recipient = max(sorted(expected), key=lambda r: len(expected[r]))
    ids = frozenset(expected[recipient])
    assert len(ids) >= 2, "the incidents should share several records with one recipient"
    async with worker_in_process(bootstrap, home, keys, WorkerOptions(POLICIES)):
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events)
        for _ in tries_within(240):
            if len(await read_all(bootstrap, deliver(recipient))) >= len(ids):
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(f"the worker did not deliver {len(ids)} records to {recipient} in 240 s")
    return Delivered(bootstrap, keys, recipient, ids)


async def receive(d: Delivered, group: str, memory: Path, until: Callable[[Seen], bool]) -> Seen:
    """One run of the recipient's subscriber: polled until ``until`` holds (or 60 s), then
    twice more, which would show anything extra."""
    kafka = clients(d.bootstrap, d.recipient)
    async with Subscriber(d.recipient, d.keys, kafka, group, replay_memory=memory) as sub:
        got: list[str] = []
        deadline = asyncio.get_running_loop().time() + 60
        while not until((got, sub.unopenable)) and asyncio.get_running_loop().time() < deadline:
            got += [r.message.event_id for r in await sub.poll(0.5)]  # type: ignore[union-attr]
        for _ in range(2):
            got += [r.message.event_id for r in await sub.poll(0.5)]  # type: ignore[union-attr]
        return got, list(sub.unopenable)


def everything(d: Delivered) -> Callable[[Seen], bool]:
    return lambda seen: d.event_ids <= set(seen[0])


async def inject_copy(d: Delivered) -> tuple[int, int]:
    """Write one delivery record again, byte for byte (value, key, headers), into its own
    partition, as anyone able to write to the topic could; the copy's position."""
    original = (await read_all(d.bootstrap, d.topic))[0]
    producer = clients(d.bootstrap).producer("test-replay-attacker")
    await producer.start()
    try:
        meta = await producer.send_and_wait(  # type: ignore[call-arg]  # aiokafka's partition=
            d.topic, original.value, key=original.key, headers=list(original.headers),
            partition=original.partition,
        )  # fmt: skip
    finally:
        await producer.stop()
    return meta.partition, meta.offset


async def test_a_restarted_subscriber_reports_a_copy_of_a_record_it_opened_as_a_replay(
    delivered: Delivered, tmp_path: Path
) -> None:
    d, memory, group = delivered, tmp_path / "replay.sqlite3", f"{delivered.recipient}.copy"
    got, _ = await receive(d, group, memory, everything(d))
    assert sorted(got) == sorted(d.event_ids)

    copy = await inject_copy(d)
    got, unopenable = await receive(
        d, group, memory, lambda seen: any((u.partition, u.offset) == copy for u in seen[1])
    )
    assert got == []
    assert [(u.partition, u.offset, u.reason) for u in unopenable] == [(*copy, "replay")]


CRASHING_RECIPIENT = """
import asyncio, sys
from pathlib import Path
from broker.config import load_settings
from broker.kafka import client_settings
from broker.keys import FileKeyStore
from broker.sdk import Subscriber

async def main(recipient, group, keys, memory):
    kafka = client_settings(load_settings(), recipient)
    async with Subscriber(recipient, FileKeyStore(Path(keys)), kafka, group,
                          replay_memory=memory) as sub:
        async for record in sub:
            print(record.message.event_id, flush=True)
            await asyncio.sleep(3600)  # handling it, until killed: its offset is never committed

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_record_opened_but_never_committed_is_yielded_again_after_a_crash(
    delivered: Delivered, tmp_path: Path
) -> None:
    d, memory, group = delivered, tmp_path / "replay.sqlite3", f"{delivered.recipient}.crash"
    env = {**os.environ, "ACCORD_HOME": str(tmp_path), **kafka_env(d.bootstrap)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_RECIPIENT, d.recipient, group, str(d.keys.path),
        str(memory), env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 90)
    finally:
        proc.kill()  # SIGKILL: no goodbye, no commit
        await proc.wait()
    opened = line.decode().strip()
    assert opened in d.event_ids
    with contextlib.closing(sqlite3.connect(memory)) as conn:  # remembered before it was yielded
        assert conn.execute("SELECT event_id FROM opened").fetchall() == [(opened,)]

    got, unopenable = await receive(d, group, memory, everything(d))
    assert opened in got  # a redelivery at its own position: not refused as a replay
    assert sorted(got) == sorted(d.event_ids)
    # Only copies another test wrote to the topic, if any, are refused.
    assert {u.reason for u in unopenable} <= {"replay"}


async def rewind(d: Delivered, group: str) -> None:
    """Commit offset 0 for every partition of ``group``, as an administrator resetting it
    would (or as Kafka expiring an idle group's offsets amounts to: back to the earliest)."""
    consumer = clients(d.bootstrap).consumer(d.topic, client_id="test-rewind", group=group)
    await consumer.start()
    try:
        for _ in range(200):
            if tps := consumer.assignment():
                break
            await asyncio.sleep(0.1)
        assert tps, "the rewinding consumer was never assigned the topic's partitions"
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def test_records_handled_before_a_restart_are_not_yielded_again_when_the_group_rewinds(
    delivered: Delivered, tmp_path: Path
) -> None:
    d, memory, group = delivered, tmp_path / "replay.sqlite3", f"{delivered.recipient}.rewind"
    got, _ = await receive(d, group, memory, everything(d))
    assert sorted(got) == sorted(d.event_ids)

    await rewind(d, group)
    got, unopenable = await receive(d, group, memory, lambda seen: len(seen[1]) >= len(d.event_ids))
    assert got == []
    assert len(unopenable) >= len(d.event_ids)  # and any copies another test wrote
    assert {u.reason for u in unopenable} == {"replay"}
