"""The desk's background retry of a sent-but-unrecorded referral or outcome stalls the desk's
one event loop only briefly while another desk process holds the database (each try waits
for the lock a short while, never the store's 5 s), yet takes the lock when that process
lets go meanwhile; tries one event at a time, backs off, and says why it gave up."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskStore, _record_sent, _store_locks
from broker.errors import StoreBusy
from tests.unit.desk.conftest import FakePublisher, sign_in
from tests.unit.desk.test_decide_busy import held  # noqa: F401
from tests.unit.desk.test_decide_once import FLAG, _child_with_flag

Make = Callable[..., tuple[TestClient, Any]]


async def _longest_stall(seconds: float) -> float:
    """The longest the event loop it runs on went without running it, over ``seconds``."""
    worst, last = 0.0, time.monotonic()
    end = last + seconds
    while last < end:
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


async def _store_waits(store: DeskStore, seconds: float) -> None:
    store._conn.execute(f"PRAGMA busy_timeout = {round(seconds * 1000)}")


def test_the_background_retry_stalls_the_desk_only_briefly_while_another_process_holds_it(
    make_client: Make, store: DeskStore, publisher: FakePublisher, held: sqlite3.Connection,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each try would otherwise wait the store's 5 s for the lock on the loop, serving no
    page meanwhile (sign-in included); it is recorded once the database is free."""
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(_record_sent, "RETRY_MOST_SECONDS", 0.1)
    child = _child_with_flag(store)
    client, _ = make_client()
    with client:  # one event loop for the requests, the retry and the ticker
        token = sign_in(client)
        held.execute("BEGIN IMMEDIATE")  # another desk process, holding on
        store._conn.execute("PRAGMA busy_timeout=100")  # the page's decision: quickly busy
        form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
        assert client.post(f"/child/{child}/decide", data=form).status_code == 503
        assert client.portal is not None
        client.portal.call(_store_waits, store, _store_locks.WAIT_SECONDS)  # as deployed
        stall = client.portal.call(_longest_stall, 1.5)
        held.execute("ROLLBACK")
        deadline = time.monotonic() + 10
        while not store.decisions(child=child) and time.monotonic() < deadline:
            client.get("/login")  # lets the loop run
            time.sleep(0.05)
    assert stall < 0.5
    [decision] = store.decisions(child=child)
    assert decision.published_event == publisher.events[0]["event_id"]


def test_background_tries_of_several_events_are_made_one_at_a_time_and_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Scaled so that a loaded machine's scheduling delays (tens of ms) cannot pass for the
    # back-off or hide it: tries 0.1, 0.2, then 0.4 s apart.
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(_record_sent, "RETRY_MOST_SECONDS", 0.4)
    monkeypatch.setattr(_record_sent, "RETRY_FOR_SECONDS", 1.6)
    running, most = [0], [0]
    tried: dict[str, list[float]] = {}

    def busy(event_id: str) -> Callable[[], Any]:
        async def attempt() -> None:
            tried.setdefault(event_id, []).append(time.monotonic())
            running[0] += 1
            most[0] = max(most[0], running[0])
            await asyncio.sleep(0.005)  # as a try that awaits its child's turn
            running[0] -= 1
            raise StoreBusy

        return attempt

    async def run() -> None:
        retries = _record_sent.Retries()
        for n in range(3):
            retries.start(f"ev{n}", busy(f"ev{n}"))
        # Until each has given up (its deadline passed), not for a fixed time: a task still
        # trying when the loop ends would be cancelled and say why="stopping".
        await asyncio.wait(asyncio.all_tasks() - {asyncio.current_task()}, timeout=20)

    with capture_logs() as logs:
        asyncio.run(run())
    assert most[0] == 1
    for times in tried.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[2] > 1.5 * gaps[0]  # slept 0.1, 0.2, then 0.4 between tries
        assert len(times) < 12  # every 0.05 s would be about 30
    assert sorted((e["event"], e["event_id"], e["why"]) for e in logs) == [
        ("desk_sent_record_retry_gave_up", f"ev{n}", "timeout") for n in range(3)
    ]  # as the desk stopping says why="stopping"


#: Another desk process: its write lock taken, then let go 10 ms after it is told a try began.
_WRITER = """
import sqlite3, sys, time
other = sqlite3.connect(sys.argv[1], isolation_level=None)
other.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
time.sleep(0.01)
other.execute("ROLLBACK")
"""


def test_a_background_try_takes_the_database_another_process_lets_go_while_it_waits(
    make_client: Make, store: DeskStore, publisher: FakePublisher,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """A try that did not wait at all would find the lock free only in the gaps between
    another process's steady writes, and could give up with the referral unrecorded: one
    held a moment longer is waited for, and the first try records it. The try's wait is a
    second here, the writer's hold 10 ms: a loaded machine must not make the writer miss
    the real 0.05 s (how short that is, the test below says)."""
    monkeypatch.setattr(_record_sent, "RETRY_WAIT_SECONDS", 1.0)
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(_record_sent, "RETRY_MOST_SECONDS", 0.5)
    child = _child_with_flag(store)
    path = tmp_path / "desk" / "sandwell-coord.db"
    writer = subprocess.Popen(  # a process, as another desk is: none of this one's threads
        [sys.executable, "-c", _WRITER, str(path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    tries: list[float] = []
    decide = store.decide

    def tried(**kw: Any) -> Any:
        if kw.get("wait_seconds") is not None:  # the background retry's, not the page's
            tries.append(kw["wait_seconds"])
            if len(tries) == 1:
                assert writer.stdin is not None
                writer.stdin.write("go\n")
                writer.stdin.flush()
        return decide(**kw)

    monkeypatch.setattr(store, "decide", tried)
    client, _ = make_client()
    try:
        with client:
            token = sign_in(client)
            assert writer.stdout is not None
            assert writer.stdout.readline() == "held\n"
            store._conn.execute("PRAGMA busy_timeout=0")  # the page's decision: busy at once
            form = {"csrf": token, "action": "refer", "reason": "Needs a hub.", "flag": FLAG}
            assert client.post(f"/child/{child}/decide", data=form).status_code == 503
            deadline = time.monotonic() + 10
            while not store.decisions(child=child) and time.monotonic() < deadline:
                client.get("/login")  # lets the loop run
                time.sleep(0.02)
    finally:
        writer.kill()
        writer.wait(10)
    [decision] = store.decisions(child=child)
    assert decision.published_event == publisher.events[0]["event_id"]
    assert tries == [1.0]  # the first try, with the try's wait; 0 took a second


def test_a_background_try_waits_for_another_process_only_briefly() -> None:
    """Long enough for a hold about to end, short enough to be a bounded stall of the
    desk's one event loop."""
    assert 0 < _record_sent.RETRY_WAIT_SECONDS <= 0.1


def test_a_retry_still_pending_when_the_desk_stops_is_logged_by_its_event_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Else nothing would say it was never recorded (only the button can, now)."""
    monkeypatch.setattr(_record_sent, "RETRY_SECONDS", 0.01)

    async def always_busy() -> None:
        raise StoreBusy

    async def run() -> None:
        _record_sent.Retries().start("ev-a", always_busy)
        await asyncio.sleep(0.05)  # the loop then stops: its tasks are cancelled

    with capture_logs() as logs:
        asyncio.run(run())
    assert logs == [
        {"event": "desk_sent_record_retry_gave_up", "event_id": "ev-a", "why": "stopping",
         "log_level": "error"}
    ]  # fmt: skip
