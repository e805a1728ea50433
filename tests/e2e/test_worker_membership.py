"""A worker holding every input partition keeps its place in the group while its event loop
is busy and taking the partitions on is slow, on the real broker.

``accord demo`` runs the worker on one event loop with the console, the agencies and the
subscribers. aiokafka sends no heartbeat while the assignment listener runs, and that
listener once started a producer per partition (72 for the example bundle) and waited for
the state: on the busy loop it outlasted aiokafka's 10 s session, and the worker was dropped
and rejoined every ~20 s for the whole run, revoking and reopening every task each time.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.devkafka import EmbeddedKafka
from broker.pipeline import WorkerOptions
from broker.pipeline._loop import INPUT_PATTERN
from broker.pipeline._tail import ChangelogTail
from broker.provision import desired_access
from tests.e2e.worker_proc import POLICIES, project_broker, worker_in_process
from tests.kafka_helpers import admin_settings

pytestmark = pytest.mark.slow

BUSY_S, FREE_S = 0.1, 0.1  # the loop is blocked half the time
SESSION_MS = 10_000  # aiokafka's default, which the worker once ran on
CATCH_UP_S = 12  # reading the state up to date takes longer than that (a long changelog)
WATCH_S = 15  # a rejoin follows a lapsed session's next heartbeat (every 3 s)


async def _hog(done: asyncio.Event) -> None:
    """Blocks the event loop in slices, as the demo's other parts and a loaded machine do."""
    while not done.is_set():
        time.sleep(BUSY_S)  # noqa: ASYNC251  # blocking the loop is the point
        await asyncio.sleep(FREE_S)


def _events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e.get("event") == name]


async def test_a_worker_on_a_busy_event_loop_takes_its_partitions_once_and_keeps_them(
    isolated_kafka: EmbeddedKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking the partitions on outlasts even aiokafka's short session: the worker keeps
    its place only if the group hears from it meanwhile."""
    monkeypatch.setenv("ACCORD_WORKER__GROUP_SESSION_TIMEOUT_MS", str(SESSION_MS))
    caught_up = ChangelogTail.caught_up

    async def slow_catch_up(tail: ChangelogTail) -> None:
        await asyncio.sleep(CATCH_UP_S)  # each time: a rejoin would take as long again
        await caught_up(tail)

    monkeypatch.setattr(ChangelogTail, "caught_up", slow_catch_up)
    policy, keys = project_broker(isolated_kafka.bootstrap, tmp_path)
    desired = desired_access(policy, admin_settings(isolated_kafka.bootstrap), logins=False)
    inputs = sum(t.partitions for t in desired.topics if re.match(INPUT_PATTERN, t.name))
    done = asyncio.Event()
    options = WorkerOptions(policies=POLICIES)
    with capture_logs() as logs:
        async with worker_in_process(isolated_kafka.bootstrap, tmp_path, keys, options) as (
            task,
            _,
        ):
            hog = asyncio.create_task(_hog(done))  # from the group's first join on
            try:
                until = time.monotonic() + 60  # the first assignment, however slow the loop
                while not _events(logs, "partitions_assigned") and time.monotonic() < until:
                    assert not task.done()
                    await asyncio.sleep(0.5)
                await asyncio.sleep(WATCH_S)
                assert not task.done()
            finally:
                done.set()
                await hog
    assigned = _events(logs, "partitions_assigned")
    moves = [(e["event"], e.get("held"), e.get("took_s")) for e in logs if "partitions" in e]
    assert len(assigned) == 1, moves
    assert _events(logs, "partitions_revoked") == []
    assert assigned[0]["held"] == inputs >= 72  # every input partition, on one worker
