"""What the desk's and the flag service's ``/livez`` and ``/readyz`` answer, from their state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.desk._probes import DeskProbes, FlagsProbes
from broker.webauth import TotpBox, UserFile


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fails() -> None:
    raise RuntimeError("consumer gone")


async def test_the_desk_is_ready_once_its_pages_serve_and_its_consumer_runs() -> None:
    started = False
    probes = DeskProbes(server_started=lambda: started, accounts=lambda: True)
    # Opening its clients: live (a slow start is not a stall), not ready.
    assert probes.live().ok
    assert probes.ready().reason == "web server not started"
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_forever())
    assert not probes.ready().ok
    started = True
    assert probes.ready().ok
    assert probes.live().ok
    for task in (probes.http, probes.ingest):
        task.cancel()


async def test_a_desk_whose_delivery_consumer_failed_is_neither_ready_nor_live() -> None:
    probes = DeskProbes(server_started=lambda: True, accounts=lambda: True)
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_fails())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert probes.ingest.done()
    assert (probes.ready().ok, probes.ready().reason) == (False, "delivery consumer not running")
    assert (probes.live().ok, probes.live().reason) == (False, "delivery consumer stopped")
    probes.http.cancel()


async def test_a_desk_whose_web_server_stopped_is_neither_ready_nor_live() -> None:
    probes = DeskProbes(server_started=lambda: True, accounts=lambda: True)
    probes.http = asyncio.create_task(asyncio.sleep(0))
    probes.ingest = asyncio.create_task(_forever())
    await probes.http
    assert probes.ready().reason == "web server not started"
    assert probes.live().reason == "web server stopped"
    probes.ingest.cancel()


async def test_a_desk_with_no_account_yet_runs_but_is_ready_only_once_one_is_added(
    tmp_path: Path,
) -> None:
    """add-user is run in the desk's container, so the desk must keep running (live); ready
    once the file holds an account, read again by the probe: no restart."""
    users = UserFile(tmp_path / "users.json", box=TotpBox(bytes(32), "desk:cog-tipton"))
    probes = DeskProbes(server_started=lambda: True, accounts=users.has_accounts)
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_forever())
    assert (probes.ready().ok, probes.ready().reason) == (False, "no accounts yet")
    assert probes.live().ok
    users.add("kim.ward", "a long enough secret")
    assert probes.ready().ok
    users.path.write_text("{not json")
    assert (probes.ready().ok, probes.ready().reason) == (False, "accounts file unreadable")
    assert probes.live().ok
    for task in (probes.http, probes.ingest):
        task.cancel()


def test_the_flag_service_is_ready_from_its_first_beat_and_live_while_it_beats() -> None:
    now = [100.0]
    probes = FlagsProbes(30.0, clock=lambda: now[0])
    # faust recovering its tables: live, not ready.
    assert probes.live().ok
    assert (probes.ready().ok, probes.ready().reason) == (False, "agents not started")
    probes.beat()
    assert probes.ready().ok
    assert probes.live().ok
    now[0] += 31  # the loop has not gone round: a stall
    assert (probes.live().ok, probes.live().reason) == (False, "main loop stalled")
    assert not probes.ready().ok
    probes.beat()
    assert probes.ready().ok
    probes.stopping()
    assert (probes.ready().ok, probes.ready().reason) == (False, "stopping")
    assert probes.live().ok


async def test_the_flag_services_beat_is_a_task_that_beats_until_cancelled() -> None:
    probes = FlagsProbes(30.0)
    task = asyncio.create_task(probes.run())
    await asyncio.sleep(0.01)
    assert probes.started
    assert probes.ready().ok
    task.cancel()


def test_the_desks_ops_server_is_off_unless_its_port_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from broker.config import load_settings

    assert load_settings().desk.metrics_port is None
    monkeypatch.setenv("ACCORD_DESK__METRICS_HOST", "0.0.0.0")  # noqa: S104  # a container's
    monkeypatch.setenv("ACCORD_DESK__METRICS_PORT", "9468")
    desk = load_settings().desk
    assert (desk.metrics_host, desk.metrics_port) == ("0.0.0.0", 9468)  # noqa: S104
