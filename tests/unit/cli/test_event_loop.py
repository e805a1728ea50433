"""The worker runs on uvloop unless its settings say asyncio; without uvloop it says so and
runs on the standard library's loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from structlog.testing import capture_logs

from broker.cli import _loop, main
from broker.config import EventLoop, load_settings

REPO = Path(__file__).resolve().parents[3]


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_runs_the_coroutine_on_a_uvloop_loop_and_returns_its_result() -> None:
    assert issubclass(_loop.run_on(EventLoop.UVLOOP, _loop_type()), uvloop.Loop)


def test_asyncio_runs_the_coroutine_on_the_standard_librarys_loop() -> None:
    assert not issubclass(_loop.run_on(EventLoop.ASYNCIO, _loop_type()), uvloop.Loop)


def test_without_uvloop_installed_it_warns_once_and_runs_on_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with capture_logs() as logs:
        ran_on = _loop.run_on(EventLoop.UVLOOP, _loop_type())
    assert not issubclass(ran_on, uvloop.Loop)
    assert [e["event"] for e in logs] == ["event_loop_unavailable"]
    assert logs[0]["running"] == "asyncio"


def test_the_worker_setting_defaults_to_uvloop_and_takes_asyncio_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    assert load_settings().worker.event_loop is EventLoop.UVLOOP
    monkeypatch.setenv("ACCORD_WORKER__EVENT_LOOP", "asyncio")
    assert load_settings().worker.event_loop is EventLoop.ASYNCIO


@pytest.mark.parametrize(("setting", "expected"), [(None, "uvloop"), ("asyncio", "asyncio")])
def test_accord_worker_runs_serve_on_the_configured_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str | None, expected: str
) -> None:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    if setting:
        monkeypatch.setenv("ACCORD_WORKER__EVENT_LOOP", setting)
    main(["keys", "init", "--party", "worker", "--dir", str(tmp_path / "keys" / "worker")])
    seen: list[tuple[EventLoop, str]] = []

    def record(loop: EventLoop, coro: Coroutine[Any, Any, Any]) -> None:
        seen.append((loop, coro.__qualname__))
        coro.close()  # never started: no Kafka here

    monkeypatch.setattr(_loop, "run_on", record)
    main(["worker", "--policies", str(REPO / "policies"), "--metrics-port", "0"])
    assert seen == [(EventLoop(expected), "serve")]
